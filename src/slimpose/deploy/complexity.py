"""Parameters and multiply-accumulates (MACs) as the papers count them.

"GFLOPs" in all five papers and in the HRNet/LPN/MMPose code means MACs of conv and
linear layers (and, here, of every matrix product: attention and token mixing);
normalisation, activation, pooling and element-wise ops are not counted.
A deconvolution counts its weights once per *input* pixel.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn

GIGA = 1e9
GIBI = 2.0**30


def count_params(model: nn.Module) -> int:
    """Parameters of the network that runs at test time (training-only parts left out)."""
    from slimpose.models.layers import TrainingOnly

    skip = {id(p) for m in model.modules() if isinstance(m, TrainingOnly) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


@torch.no_grad()
def count_macs(model: nn.Module, input_size: tuple[int, int], in_channels: int = 3) -> int:
    """MACs of one forward pass on a single (1, C, H, W) input.

    Counted at the aten level (PyTorch's FlopCounterMode, which reports 2 FLOPs per
    MAC): convolutions, linear layers and every matrix product — torch.matmul, bmm,
    einsum, attention — wherever the model calls them, not only inside nn.Conv/nn.Linear
    modules. A transposed convolution counts its weights once per input pixel.
    """
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    # The CPU attention kernel has no formula of its own in PyTorch's table.
    extra = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops}
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    # nn.MultiheadAttention's fused inference kernel hides its products from the counter.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        device = next(model.parameters()).device
        with FlopCounterMode(display=False, custom_mapping=extra) as counter:
            model(torch.zeros(1, in_channels, *input_size, device=device))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    return counter.get_total_flops() // 2


# ----------------------------------------------------------------------------------
# The complexity table: every registered model beside the papers' figures.

DEFAULT_INPUT = (256, 192)


def format_input(input_size: tuple[int, int]) -> str:
    return f"{int(input_size[0])}x{int(input_size[1])}"


def _pct(ours: float, paper: float | None) -> float | None:
    if paper is None or paper == 0:
        return None
    return 100.0 * (ours - paper) / paper


def _measure_model(model: nn.Module, input_size: tuple[int, int], device: str | None = None) -> dict:
    from contextlib import nullcontext

    from slimpose.models.reparam import reparameterize_model

    model.eval()
    params, macs = count_params(model), count_macs(model, tuple(input_size))
    # Modules created while re-parameterising land on the model's device.
    with torch.device(device) if device else nullcontext():
        deployed = reparameterize_model(model, inplace=True)
    return {
        "params": params,
        "params_deploy": count_params(deployed),
        "macs": macs,
        "macs_deploy": count_macs(deployed, tuple(input_size)),
    }


@contextmanager
def _quiet_cpu():
    """One intra-op thread and denormals flushed to zero while counting: the forward pass
    only has to produce shapes, and on a busy machine OpenMP spin-waits (and denormal
    arithmetic in freshly initialised nets) make it needlessly slow. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    flushed = torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if flushed:
            torch.set_flush_denormal(False)


def _measure(name: str, input_size: tuple[int, int], num_joints: int) -> dict:
    """Params and MACs of a registered model, training and deployed form."""
    from slimpose.models.registry import build_model

    with _quiet_cpu():
        torch.manual_seed(0)
        model = build_model(name, num_joints=num_joints, input_size=tuple(input_size))
        return _measure_model(model, input_size)


def complexity_table(models: list[str], input_size: tuple[int, int] | None = None) -> list[dict]:
    """One row per (model, paper setting): params and GMACs in training and deployed form
    beside the paper's figures.

    ``gmacs`` / ``gmacs_deploy`` are in 1e9 units, ``gmacs_2_30`` (training form) in 2^30
    units (LPN's divisor). A paper figure whose ``form`` is "deploy" is compared with the
    deployed (re-parameterised, BN-folded) model, otherwise with the training form.
    With ``input_size`` given, rows are at that size only: one per paper setting at that
    size (with its K), or one uncompared row (K=17). Models without figures get one row
    at 256x192.
    """
    from slimpose.models.registry import get_model_entry

    rows: list[dict] = []
    cache: dict[tuple, dict] = {}
    for name in models:
        entry = get_model_entry(name)
        if input_size is not None:
            size = tuple(int(v) for v in input_size)
            settings = [(size, p.num_joints, p) for p in entry.paper if tuple(p.input_size) == size]
            settings = settings or [(size, 17, None)]
        elif entry.paper:
            settings = [(tuple(p.input_size), p.num_joints, p) for p in entry.paper]
        else:
            settings = [(DEFAULT_INPUT, 17, None)]
        for size, joints, paper in settings:
            key = (name, size, joints)
            if key not in cache:
                cache[key] = _measure(name, size, joints)
            m = cache[key]
            deploy_form = paper is not None and paper.form == "deploy"
            ours_params = m["params_deploy"] if deploy_form else m["params"]
            ours_gmacs = (m["macs_deploy"] if deploy_form else m["macs"]) / GIGA
            paper_params = paper.params_m if paper is not None else None
            paper_gmacs = paper.gmacs if paper is not None else None
            params_diff = _pct(ours_params / 1e6, paper_params)
            gmacs_diff = _pct(ours_gmacs, paper_gmacs)
            if paper is None:
                within = None
            else:
                tol = 100.0 * entry.tolerance
                within = all(abs(d) <= tol + 1e-9 for d in (params_diff, gmacs_diff) if d is not None)
            rows.append({
                "model": name,
                "input": format_input(size),
                "num_joints": joints,
                "output_kind": entry.output_kind,
                "params": m["params"],
                "params_deploy": m["params_deploy"],
                "gmacs": m["macs"] / GIGA,
                "gmacs_deploy": m["macs_deploy"] / GIGA,
                "gmacs_2_30": m["macs"] / GIBI,
                "paper_form": paper.form if paper is not None else None,
                "paper_params": paper_params,
                "paper_gmacs": paper_gmacs,
                "params_diff_pct": params_diff,
                "gmacs_diff_pct": gmacs_diff,
                "tolerance_pct": 100.0 * entry.tolerance,
                "within_tolerance": within,
                "paper_note": paper.note if paper is not None else "",
            })
    return rows


def format_complexity_table(rows: list[dict]) -> str:
    """A fixed-width text table of ``complexity_table`` rows."""

    def f(v, spec, width, suffix=""):
        text = "-" if v is None else format(v, spec) + suffix
        return f"{text:>{width}}"

    header = (f"{'model':<14} {'input':>8} {'K':>3} {'params':>8} {'deploy':>8} {'GMACs':>7} {'deploy':>7} "
              f"{'G(2^30)':>7} | {'paper':>7} {'P.GMACs':>7} {'form':>6} {'dP%':>6} {'dG%':>6} {'ok':>3}")
    lines = [header, "-" * len(header)]
    for r in rows:
        ok = {True: "yes", False: "NO", None: "-"}[r["within_tolerance"]]
        lines.append(
            f"{r['model']:<14} {r['input']:>8} {r['num_joints']:>3} {r['params'] / 1e6:>7.3f}M "
            f"{r['params_deploy'] / 1e6:>7.3f}M {r['gmacs']:>7.3f} {r['gmacs_deploy']:>7.3f} {r['gmacs_2_30']:>7.3f} | "
            f"{f(r['paper_params'], '.2f', 7, 'M')} {f(r['paper_gmacs'], '.3f', 7)} {r['paper_form'] or '-':>6} "
            f"{f(r['params_diff_pct'], '+.1f', 6)} {f(r['gmacs_diff_pct'], '+.1f', 6)} {ok:>3}"
        )
    lines.append("params in millions; GMACs = conv/linear multiply-accumulates in 1e9 units "
                 "(G(2^30) = training form / 2^30, LPN's divisor); 'deploy' = re-parameterised, BN folded; "
                 "paper figures compared in the form they were published for.")
    return "\n".join(lines)


def markdown_complexity_table(rows: list[dict]) -> str:
    """``complexity_table`` rows as a markdown table (the one the docs carry)."""

    def pair(train: float, deploy: float, spec: str, suffix: str = "") -> str:
        a, b = format(train, spec) + suffix, format(deploy, spec) + suffix
        return a if a == b else f"{a} / {b}"

    lines = ["| model | input | K | params (train / deploy) | GMACs (train / deploy) | paper (form) | within |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = "-" if r["paper_params"] is None else (
            f"{r['paper_params']:.2f}M / {'-' if r['paper_gmacs'] is None else format(r['paper_gmacs'], '.3f')} "
            f"({r['paper_form']})")
        within = {True: f"yes ({r['tolerance_pct']:g}%)", False: f"NO ({r['tolerance_pct']:g}%)",
                  None: "-"}[r["within_tolerance"]]
        lines.append(f"| `{r['model']}` | {r['input']} | {r['num_joints']} | "
                     f"{pair(r['params'] / 1e6, r['params_deploy'] / 1e6, '.2f', 'M')} | "
                     f"{pair(r['gmacs'], r['gmacs_deploy'], '.3f')} | {paper} | {within} |")
    return "\n".join(lines)
