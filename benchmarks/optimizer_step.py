"""Time of one optimiser step, fused kernel against PyTorch's plain loop, per model.

Builds each model as its LSPET config trains it (14 joints; RepNet-A with its training-only
heatmap decoder and fusion 128), fills every gradient with noise and times
``optimizer.step()`` as ``slimpose.engine.train.build_optimizer`` builds it, with
``train.fused_optimizer`` on and off. The step's cost grows with the parameter count, not
the pixels, which is why it weighs more on RepNet-A (8.6M training-time parameters) than on
LPN-50. Prints a table; asserts nothing.

    OMP_NUM_THREADS=1 python benchmarks/optimizer_step.py [--steps 20]
"""

from __future__ import annotations

import argparse
import time

MODELS = {
    "repnet_a": {"num_joints": 14, "auxiliary_heatmaps": True, "fusion_channels": 128},
    "lpn_50": {"num_joints": 14},
}


def step_ms(model, optimizer: str, fused: bool, steps: int) -> float:
    import torch

    from slimpose.config import TrainConfig
    from slimpose.engine.builders import build_optimizer

    opt = build_optimizer(TrainConfig(optimizer=optimizer, lr=1e-3, weight_decay=1e-4, fused_optimizer=fused), model)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    for _ in range(3):  # the first steps allocate the moment buffers
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    args = ap.parse_args()

    import torch

    from slimpose.machine import cpu_name
    from slimpose.models import build_model

    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':10s} {'parameters':>10s} {'optimizer':9s} {'plain ms':>9s} {'fused ms':>9s}")
    for name, kwargs in MODELS.items():
        model = build_model(name, **kwargs)
        count = sum(p.numel() for p in model.parameters())
        for optimizer in ("adam", "adamw"):
            plain, fused = (step_ms(model, optimizer, f, args.steps) for f in (False, True))
            print(f"{name:10s} {count:10,d} {optimizer:9s} {plain:9.1f} {fused:9.1f}", flush=True)


if __name__ == "__main__":
    main()
