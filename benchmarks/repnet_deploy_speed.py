"""Batch-1 CPU latency of RepNet in training form vs deployed (re-parameterised) form.

    python benchmarks/repnet_deploy_speed.py [--threads 2] [--runs 30] [--warmup 5]

Both forms run in eval mode under ``torch.inference_mode``; the figure is the median
over ``--runs`` timed forward passes after ``--warmup`` untimed ones. It reports, it does
not assert. The paper's CPU figures (Table 5, Xeon E5-2620 v3, thread count not given):
RepNet-A 81 ms train / 50 ms deploy, RepNet-B 115 / 67.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from slimpose.deploy.complexity import count_macs, count_params
from slimpose.models.reparam import reparameterize_model
from slimpose.models import build_model


def median_latency_ms(model: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int) -> float:
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--input-size", type=int, nargs=2, default=(256, 192), metavar=("H", "W"))
    parser.add_argument("--models", nargs="+", default=["repnet_a", "repnet_b"])
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    size = tuple(args.input_size)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s), batch 1, {size[0]}x{size[1]}, median of {args.runs} runs")
    header = f"{'model':<10} {'form':<7} {'params (M)':>10} {'GMACs':>7} {'latency (ms)':>13}"
    print(header)
    print("-" * len(header))
    x = torch.randn(1, 3, *size)
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, input_size=size).eval()
        deployed = reparameterize_model(model)
        ms = {}
        for form, m in (("train", model), ("deploy", deployed)):
            ms[form] = median_latency_ms(m, x, args.runs, args.warmup)
            print(f"{name:<10} {form:<7} {count_params(m) / 1e6:>10.2f} {count_macs(m, size) / 1e9:>7.3f} "
                  f"{ms[form]:>13.1f}")
        print(f"{name:<10} speed-up of the deployed form: {ms['train'] / ms['deploy']:.2f}x")


if __name__ == "__main__":
    main()
