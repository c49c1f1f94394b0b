"""Distillation: the teacher's heatmaps land where the student's labels are, and the engine
trains a student from a teacher at another input size."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from slimpose.codecs.heatmap import HeatmapCodec
from slimpose.config import config_from_dict
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.engine.distill import mirror_heatmaps_back, resample_from_origin
from slimpose.engine.train import Trainer
from slimpose.errors import ConfigError

from engine_testdata import small_config

JOINTS = np.array([[10.3, 20.7], [40.0, 33.2], [55.6, 71.9], [25.5, 50.25]])  # in a 96x72 crop (x, y)


def _decoded_in_student_crop(teacher_heatmaps: torch.Tensor, resample) -> np.ndarray:
    student = HeatmapCodec((64, 48), sigma=1.0, decode="dark")  # teacher sigma 1.5 scaled by 64/96
    maps = resample(teacher_heatmaps, student.heatmap_size)
    return student.decode_batch(maps.numpy())[0][0]


def test_a_teacher_heatmap_resampled_to_the_student_decodes_to_the_same_crop_point():
    teacher = HeatmapCodec((96, 72), sigma=1.5)
    maps, _ = teacher.encode(JOINTS, np.ones(len(JOINTS)))
    maps = torch.as_tensor(maps[None], dtype=torch.float32)
    want = JOINTS * 64 / 96  # the same box cropped at 64x48
    assert np.abs(_decoded_in_student_crop(maps, resample_from_origin) - want).max() < 0.15
    # a plain bilinear resize (pixel corners aligned) moves every joint by about 2/3 of a pixel
    naive = lambda m, size: F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    assert np.abs(_decoded_in_student_crop(maps, naive) - want).min() > 0.4


def test_resampling_to_the_same_size_changes_nothing():
    maps = torch.rand(2, 3, 16, 12)
    assert torch.allclose(resample_from_origin(maps, (16, 12)), maps, atol=1e-6)


def test_heatmaps_of_the_mirrored_crop_come_back_to_the_joints_of_the_crop():
    codec = HeatmapCodec((96, 72), sigma=1.5, decode="dark")
    flip_index = [1, 0, 2, 3]  # joints 0 and 1 are a left/right pair
    mirrored_joints = np.stack([72 - 1 - JOINTS[:, 0], JOINTS[:, 1]], axis=1)[flip_index]
    maps, _ = codec.encode(mirrored_joints, np.ones(len(JOINTS)))
    maps = torch.as_tensor(maps[None], dtype=torch.float32)
    back = mirror_heatmaps_back(maps, flip_index, 72)
    # within 0.1 heatmap pixel (linear interpolation bends a Gaussian's peak a little)
    assert np.abs(codec.decode_batch(back.numpy())[0][0] - JOINTS).max() < 0.4
    # the plain reversal of the columns lands 3/4 of a heatmap pixel (3 crop pixels) left
    reversed_only = maps[:, flip_index].flip(-1)
    assert np.abs(codec.decode_batch(reversed_only.numpy())[0][0][:, 0] - JOINTS[:, 0] + 3).max() < 0.4


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


@pytest.fixture(scope="module")
def teacher_checkpoint(synth, tmp_path_factory):
    cfg = small_config(synth, epochs=1, val_interval=0)
    cfg["data"]["input_size"] = [128, 96]
    work_dir = tmp_path_factory.mktemp("teacher")
    Trainer(config_from_dict(cfg), work_dir).fit()
    return work_dir / "last.pth"


def test_a_student_trains_from_a_teacher_at_another_input_size(synth, teacher_checkpoint, tmp_path, capsys):
    cfg = small_config(synth, epochs=1, val_interval=0, distill_from=str(teacher_checkpoint), distill_weight=0.7)
    trainer = Trainer(config_from_dict(cfg), tmp_path)
    assert trainer.teacher.input_size == (128, 96) and trainer.teacher.weight == 0.7
    assert not any(p.requires_grad for p in trainer.teacher.model.parameters())
    summary = trainer.fit()
    assert math.isfinite(summary["metrics"]["AP"])
    assert "gives 0.7 of each target" in capsys.readouterr().out


def test_the_blended_target_is_the_teachers_share_plus_the_labels(synth, teacher_checkpoint, tmp_path):
    cfg = small_config(synth, distill_from=str(teacher_checkpoint), distill_weight=0.25)
    teacher = Trainer(config_from_dict(cfg), tmp_path).teacher
    images, labels = torch.rand(2, 3, 64, 48), torch.rand(2, 17, 16, 12)
    expected = 0.75 * labels + 0.25 * teacher.heatmaps(images, (16, 12))
    assert torch.allclose(teacher.blend(images, labels), expected)


def test_a_flip_teacher_averages_the_crop_and_its_mirror(synth, teacher_checkpoint, tmp_path, capsys):
    cfg = small_config(synth, distill_from=str(teacher_checkpoint), distill_flip=True)
    trainer = Trainer(config_from_dict(cfg), tmp_path)
    teacher, images = trainer.teacher, torch.rand(2, 3, 64, 48)
    assert teacher.flip_index == trainer.layout.flip_index
    assert "with its flip test" in capsys.readouterr().out
    crops = resample_from_origin(images, teacher.input_size)
    with torch.no_grad():
        plain, mirrored = teacher.model(crops), teacher.model(crops.flip(-1))
    expected = resample_from_origin((plain + mirror_heatmaps_back(mirrored, teacher.flip_index, 96)) / 2, (16, 12))
    assert torch.allclose(teacher.heatmaps(images, (16, 12)), expected, atol=1e-6)


@pytest.mark.parametrize("change, field", [
    ({"train": {"distill_weight": 0.0}}, "train.distill_weight: must lie in"),
    ({"train": {"distill_weight": 1.5}}, "train.distill_weight: must lie in"),
    ({"model": {"name": "repnet_a", "kwargs": {}}, "data": {"input_size": [64, 64]}}, "train.distill_from"),
    ({"train": {"distill_from": "lpn_50_lsp_192x144"}}, "train.distill_from: .*the student's joints are nose"),
])
def test_a_teacher_that_cannot_teach_is_a_config_error(synth, teacher_checkpoint, tmp_path, change, field):
    cfg = small_config(synth, distill_from=str(teacher_checkpoint))
    for section, values in change.items():
        cfg[section] = {**cfg[section], **values}
    with pytest.raises(ConfigError, match=field):
        Trainer(config_from_dict(cfg), tmp_path)  # the config's own checks or the teacher's
