"""A small synthetic-data experiment config shared by the engine tests (its own module
name, so no other folder's helpers can shadow it)."""


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
