"""A small synthetic-data experiment config shared by the engine tests, and a two-process
torchrun of it (its own module name, so no other folder's helpers can shadow it)."""

import os
import subprocess
import sys

import yaml


def small_config(paths, **train):
    data = {
        "model": {"name": "tinypose", "kwargs": {"width": 8, "deconv_channels": 16}},
        "data": {
            "input_size": [64, 48], "batch_size": 8, "val_batch_size": 16, "workers": 0,
            "train": {"type": "coco", "ann_file": str(paths["train_ann"]), "img_dir": str(paths["train_images"])},
            "val": {"type": "coco", "ann_file": str(paths["val_ann"]), "img_dir": str(paths["val_images"])},
        },
        "train": {"epochs": 2, "lr": 1e-3, "milestones": [1], "val_interval": 1, "deterministic": True,
                  "log_interval": 1, **train},
    }
    return data


def torchrun_train(cfg: dict, work_dir, port: int) -> None:
    """``slimpose train`` of ``cfg`` in two CPU processes under torchrun, into ``work_dir``;
    fails the test with the run's output if it fails."""
    path = work_dir.parent / f"{work_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
         "-m", "slimpose", "train", str(path), "--work-dir", str(work_dir)],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
