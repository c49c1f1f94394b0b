"""Starting from weights of another layout: the output rows follow the joints by name."""

import pytest
import torch

from slimpose.engine.checkpoint import load_partial_weights, per_joint_rows
from slimpose.keypoints import get_layout
from slimpose.models import build_model

LSP = list(get_layout("lsp").names)
COCO = list(get_layout("coco").names)


def _donor(name, names, **kwargs):
    torch.manual_seed(1)
    model = build_model(name, num_joints=len(names), **kwargs)
    return model, {"model": model.state_dict(), "meta": {"layout": {"names": names}}}


@pytest.mark.parametrize("name,kwargs", [("tinypose", {"width": 8, "deconv_channels": 16}),
                                         ("repnet_a", {"input_size": (64, 48)})])
def test_per_joint_rows_are_the_output_layers(name, kwargs):
    rows = per_joint_rows(build_model(name, num_joints=5, **kwargs))
    assert rows and all(r >= 1 for r in rows.values())
    if name == "repnet_a":
        assert rows["head.weight"] == 4 and rows["head.bias"] == 4  # x, y and two scales per joint


def test_lsp_weights_into_a_coco_model_copy_exactly_the_rows_of_shared_joints():
    donor, state = _donor("tinypose", LSP, width=8, deconv_channels=16)
    torch.manual_seed(2)
    model = build_model("tinypose", num_joints=17, width=8, deconv_channels=16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_partial_weights(model, state, joint_names=COCO)

    shared = [n for n in COCO if n in LSP]
    assert report["joints_carried"] == shared and len(shared) == 12
    assert report["joints_fresh"] == ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    rows = per_joint_rows(model)
    own, given = model.state_dict(), donor.state_dict()
    for key, per_joint in rows.items():
        for i, joint in enumerate(COCO):
            mine = own[key][i * per_joint:(i + 1) * per_joint]
            if joint in LSP:
                j = LSP.index(joint)
                assert torch.equal(mine, given[key][j * per_joint:(j + 1) * per_joint]), (key, joint)
            else:
                assert torch.equal(mine, before[key][i * per_joint:(i + 1) * per_joint]), (key, joint)
    for key in set(own) - set(rows):  # everything else is the donor's
        assert torch.equal(own[key], given[key]), key


def test_same_joint_count_in_another_order_is_reordered_not_copied():
    shuffled = LSP[::-1]
    donor, state = _donor("tinypose", shuffled, width=8, deconv_channels=16)
    model = build_model("tinypose", num_joints=14, width=8, deconv_channels=16)
    report = load_partial_weights(model, state, joint_names=LSP)
    assert report["joints_carried"] == LSP and report["joints_fresh"] == []
    for key, per_joint in per_joint_rows(model).items():
        flipped = donor.state_dict()[key].reshape(14, per_joint, *donor.state_dict()[key].shape[1:]).flip(0)
        assert torch.equal(model.state_dict()[key], flipped.reshape(model.state_dict()[key].shape))


def test_without_joint_names_loading_stays_by_shape():
    donor, state = _donor("tinypose", LSP, width=8, deconv_channels=16)
    model = build_model("tinypose", num_joints=17, width=8, deconv_channels=16)
    report = load_partial_weights(model, {"model": state["model"]}, joint_names=COCO)
    assert report["joints_carried"] == [] and report["joints_fresh"] == []
    assert set(per_joint_rows(model)) <= set(report["missing"])  # output layers do not fit by shape
