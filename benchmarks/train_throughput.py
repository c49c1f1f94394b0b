"""Training throughput (images/s) of one config under the settings that decide it on a CPU.

Runs the real `Trainer` (data set, augmentation, target encoding, model, loss, Adam) for a
few iterations per setting and reports images/s of the timed iterations, after one
warm-up epoch per setting (which also pays torch.compile's compilation). Settings: data
workers, channels-last, the unfused optimizer, torch.compile and batch size, each changed
alone from the config's own values. Prints a table and optionally writes JSON; asserts
nothing.

    python benchmarks/train_throughput.py configs/lpn_50_lspet_128x96.yaml --iters 30 \
        [--json runs/train_throughput.json]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from slimpose.errors import ConfigError
from slimpose.machine import cpu_name


def measure(config: str, overrides: list[str], iters: int) -> float:
    from slimpose.config import load_config
    from slimpose.engine.train import Trainer

    cfg = load_config(config, overrides + [f"train.max_iters_per_epoch={iters}", "train.max_minutes=0"])
    with tempfile.TemporaryDirectory() as work_dir:
        trainer = Trainer(cfg, work_dir)
        trainer._train_epoch()  # warm-up: worker start, allocator, compilation
        trainer.state.epoch += 1
        return trainer._train_epoch()["images_per_s"]


SETTINGS = {
    "config as written": [],
    "workers=0": ["data.workers=0"],
    "workers=1": ["data.workers=1"],
    "workers=2": ["data.workers=2"],
    "channels_last": ["train.channels_last=true"],
    "unfused optimizer": ["train.fused_optimizer=false"],
    "compile": ["train.compile=true"],
    "batch 32": ["data.batch_size=32"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per setting")
    ap.add_argument("--only", nargs="*", help="names of settings to run (default: all)")
    ap.add_argument("--set", nargs="*", default=[], dest="extra", help="overrides applied to every setting")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    import torch

    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    rows = []
    for name, overrides in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            ips = measure(args.config, args.extra + overrides, args.iters)
        except ConfigError as e:  # a setting this model cannot train with here (RepNet: channels_last on a CPU)
            rows.append({"setting": name, "overrides": args.extra + overrides, "images_per_s": None, "error": str(e)})
            print(f"{name:20s}     n/a   {e}", flush=True)
            continue
        rows.append({"setting": name, "overrides": args.extra + overrides, "images_per_s": round(ips, 2)})
        print(f"{name:20s} {ips:7.1f} img/s   ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.json:
        from slimpose.io import write_json_atomic

        write_json_atomic(args.json, {"config": args.config, "cpu": cpu_name(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
