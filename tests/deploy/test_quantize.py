"""INT8 quantisation settings that depend on the CPU."""

from __future__ import annotations


def test_int8_weights_use_7_bits_on_x86_without_vnni(tmp_path):
    from slimpose.deploy.quantize import cpu_lacks_vnni

    def cpu(flags):
        path = tmp_path / f"cpuinfo_{len(flags)}"
        path.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        return path

    assert cpu_lacks_vnni(cpu("fpu sse2 avx avx2 fma")) is True  # AVX2 only: U8S8 sums saturate
    assert cpu_lacks_vnni(cpu("fpu avx2 avx512f avx512_vnni")) is False
    assert cpu_lacks_vnni(cpu("fpu avx2 avx_vnni")) is False
    assert cpu_lacks_vnni(cpu("fp asimd")) is False  # not x86
    assert cpu_lacks_vnni(tmp_path / "absent") is False
