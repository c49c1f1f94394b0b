"""End-to-end engine tests on a small synthetic data set (CPU, a few seconds each)."""

import json
import math
import os
import signal

import numpy as np
import pytest
import torch
import yaml

from slimpose.cli import main as cli_main
from slimpose.config import TrainConfig, config_from_dict
from slimpose.data.synthetic import generate_synthetic_coco
from slimpose.engine.checkpoint import load_checkpoint, load_model_weights
from slimpose.engine import train as train_module
from slimpose.engine.train import Trainer, build_optimizer, learning_rate
from slimpose.errors import TrainingDiverged
from slimpose.errors import CheckpointError, ConfigError
from slimpose.models import build_model
from slimpose.weights import resolve_checkpoint

from engine_testdata import small_config, torchrun_train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return generate_synthetic_coco(tmp_path_factory.mktemp("synth"), 12, 4, seed=3)


def test_learning_rate_schedules():
    tc = TrainConfig(lr=1e-3, milestones=(90, 120), epochs=150, stages=7, restart_epoch=60)
    assert learning_rate(tc, 10, 0, 10**6) == pytest.approx(1e-3)
    assert learning_rate(tc, 95, 0, 10**6) == pytest.approx(1e-4)
    assert learning_rate(tc, 130, 0, 10**6) == pytest.approx(1e-5)
    # LPN's later stages restart at epoch 60 with the base lr and decay again at 90 and 120.
    assert learning_rate(tc, 60, 1, 10**6) == pytest.approx(1e-3)
    assert learning_rate(tc, 121, 3, 10**6) == pytest.approx(1e-5)
    warm = TrainConfig(lr=1.0, warmup_iters=100, warmup_factor=0.0)
    assert learning_rate(warm, 0, 0, 50) == pytest.approx(0.5)
    cos = TrainConfig(lr=1.0, schedule="cosine", epochs=10, min_lr=0.0)
    assert learning_rate(cos, 5, 0, 10**6) == pytest.approx(0.5)
    assert learning_rate(cos, 10, 0, 10**6) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_fused_optimizer_takes_the_same_steps_as_the_plain_one(kind):
    torch.manual_seed(0)
    fused_model = build_model("repnet_a", num_joints=14, fusion_channels=32)
    plain_model = build_model("repnet_a", num_joints=14, fusion_channels=32)
    plain_model.load_state_dict(fused_model.state_dict())
    fused = build_optimizer(TrainConfig(optimizer=kind, lr=1e-3, weight_decay=1e-4), fused_model)
    plain = build_optimizer(TrainConfig(optimizer=kind, lr=1e-3, weight_decay=1e-4, fused_optimizer=False), plain_model)
    assert fused.param_groups[0]["fused"] and not plain.param_groups[0]["fused"]
    start = {name: p.detach().clone() for name, p in fused_model.named_parameters()}
    images = torch.randn(2, 3, 64, 48)
    # One step: after it the two differ by float rounding, which Adam's normalisation
    # amplifies on the next steps wherever a gradient is near zero.
    for model, optimizer in ((fused_model, fused), (plain_model, plain)):
        model(images).square().mean().backward()
        optimizer.step()
    # A few float32 ulps of each weight (one ulp apart on AMD EPYC), and of the step (lr)
    # where a weight is near zero.
    ulps = 4 * torch.finfo(torch.float32).eps
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=ulps, atol=ulps * 1e-3, msg=name)
    moved = [(a - start[name]).abs().max().item() for name, a in fused_model.named_parameters()]
    assert max(moved) == pytest.approx(1e-3, rel=0.01)  # Adam's first step moves by lr


def test_train_writes_checkpoints_logs_and_evaluates(synth, tmp_path):
    cfg = config_from_dict(small_config(synth))
    summary = Trainer(cfg, tmp_path).fit()
    assert summary["main_metric"] == "AP" and "AP" in summary["metrics"]
    for name in ("last.pth", "best.pth", "config.yaml", "log.jsonl", "summary.json"):
        assert (tmp_path / name).is_file(), name
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(math.isfinite(r["loss"]) and "val/AP" in r for r in records)
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)  # tensors and plain data only
    assert ckpt["epoch"] == 2 and ckpt["meta"]["model_name"] == "tinypose"
    # `slimpose eval` reads the config stored in the checkpoint and writes metrics + predictions.
    out = tmp_path / "eval" / "metrics.json"
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "best.pth"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert {"AP", "AP50", "AP75", "APM", "APL", "AR"} <= set(metrics)
    assert (tmp_path / "eval" / "results_keypoints.json").is_file()


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_resume_after_crash_matches_uninterrupted_run(synth, tmp_path, ema_decay):
    cfg = config_from_dict(small_config(synth, epochs=3, ema_decay=ema_decay))
    reference = Trainer(cfg, tmp_path / "ref")
    reference.fit()

    crashing = Trainer(cfg, tmp_path / "run")
    calls = {"n": 0}
    original = crashing.train_set.__class__.__getitem__
    per_epoch = len(crashing.loader) * cfg.data.batch_size

    def fail_mid_epoch_two(self, i):
        if self is crashing.train_set:
            calls["n"] += 1
            if calls["n"] > per_epoch + per_epoch // 2:  # half-way through the second epoch
                raise RuntimeError("simulated crash")
        return original(self, i)

    crashing.train_set.__class__.__getitem__ = fail_mid_epoch_two
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            crashing.fit()
    finally:
        crashing.train_set.__class__.__getitem__ = original
    assert load_checkpoint(tmp_path / "run" / "last.pth")["epoch"] == 1
    if ema_decay:
        _check_mid_stage_average(tmp_path / "run", iterations=len(crashing.loader))

    resumed = Trainer(cfg, tmp_path / "run")
    assert resumed.resume()
    resumed.fit()
    want, got = reference.model.state_dict(), resumed.model.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k


def _check_mid_stage_average(run, iterations):
    """Mid-stage, a checkpoint's "model" is the weight average (what was validated) and
    "train_weights" the raw weights the optimiser goes on from."""
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["ema_steps"] == iterations
    assert any(not torch.equal(ckpt["model"][k], ckpt["train_weights"][k]) for k in ckpt["model"])
    logged = json.loads((run / "log.jsonl").read_text().splitlines()[0])["val/AP"]
    out = run / "eval" / "metrics.json"
    assert cli_main(["eval", "--checkpoint", str(run / "last.pth"), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == pytest.approx(logged, abs=1e-9)


def test_nan_loss_stops_with_message_and_keeps_last_checkpoint(synth, tmp_path):
    cfg = config_from_dict(small_config(synth, epochs=2))
    trainer = Trainer(cfg, tmp_path)
    criterion = trainer.head

    def nan_in_second_epoch(output, target, weight):
        loss = criterion(output, target, weight)
        return loss * float("nan") if trainer.state.epoch == 1 else loss

    trainer.head = nan_in_second_epoch
    with pytest.raises(TrainingDiverged, match=r"loss became nan .* epoch 2.*last\.pth is intact"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "last.pth")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_ctrl_c_while_an_epoch_is_saved_stops_once_its_files_are_all_written(synth, tmp_path, monkeypatch):
    cfg = config_from_dict(small_config(synth, epochs=3))
    copy_last = train_module.copy_last_checkpoint

    def interrupted_copy(work_dir, improved):  # Ctrl-C between last.pth and the log
        os.kill(os.getpid(), signal.SIGINT)
        copy_last(work_dir, improved)

    monkeypatch.setattr(train_module, "copy_last_checkpoint", interrupted_copy)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path).fit()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1]
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1


def test_checkpoint_from_another_model_names_the_keys(tmp_path):
    torch.save({"model": build_model("tinypose", width=16).state_dict(), "meta": {"model_name": "tinypose"}},
               tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint is for model 'tinypose'.*shape mismatch: decoder.0.conv.weight \(128, 64, 4, 4\) vs model \(256, 64, 4, 4\)"):
        load_model_weights(build_model("tinypose"), tmp_path / "other.pth")
    torch.save({"model": {"backbone.weight": torch.zeros(1)}}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: .*unexpected keys: backbone.weight"):
        load_model_weights(build_model("tinypose"), tmp_path / "foreign.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pth")


def test_iterative_schedule_two_stages_from_cli(synth, tmp_path):
    cfg = small_config(synth, epochs=2, stages=2, restart_epoch=1, milestones=[1])
    cfg["model"] = {"name": "lpn_50"}
    path = tmp_path / "lpn_iterative.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert cli_main(["train", str(path), "--work-dir", str(tmp_path / "run")]) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in records] == [(0, 1), (0, 2), (1, 2)]
    assert (tmp_path / "run" / "stage0_best.pth").is_file() and (tmp_path / "run" / "stage1_best.pth").is_file()
    # Stage 1 restarts the lr at the base value (its epoch 2 lies past the milestone at 1
    # only for stage 0).
    assert records[1]["lr"] == pytest.approx(1e-4) and records[2]["lr"] == pytest.approx(1e-3)


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(synth, tmp_path):
    torchrun_train(small_config(synth, epochs=1, ema_decay=0.9), tmp_path / "run", 29533)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "AP" in summary["metrics"]
    assert load_checkpoint(tmp_path / "run" / "last.pth")["epoch"] == 1


def test_time_budget_stops_validates_and_saves(synth, tmp_path):
    cfg = config_from_dict(small_config(synth, epochs=50, max_minutes=1e-4))
    summary = Trainer(cfg, tmp_path).fit()
    assert summary["stopped_by_time_budget"] is True
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["iterations"] == 1 and "val/AP" in records[0]
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1


def test_an_input_size_the_model_cannot_serve_is_a_config_error(synth, tmp_path):
    data = small_config(synth)
    data["data"]["input_size"] = [72, 56]  # tinypose gives 20x16 heatmaps here, not 18x14
    with pytest.raises(ConfigError, match=r"data.input_size: tinypose at 72x56: expected heatmaps \(N, 17, 18, 14\), "
                                          r"got \(1, 17, 20, 16\)"):
        Trainer(config_from_dict(data), tmp_path)


def test_coordinate_model_trains_and_evaluates_through_the_same_engine(synth, tmp_path):
    cfg = small_config(synth, epochs=1)
    cfg["model"] = {"name": "repnet_a"}
    cfg["data"]["input_size"] = [64, 64]
    summary = Trainer(config_from_dict(cfg), tmp_path).fit()
    assert math.isfinite(summary["metrics"]["AP"])
    out = tmp_path / "eval" / "metrics.json"
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "last.pth"), "--out", str(out)]) == 0
    assert {"AP", "AR"} <= set(json.loads(out.read_text()))
    results = json.loads((tmp_path / "eval" / "results_keypoints.json").read_text())
    assert results and len(results[0]["keypoints"]) == 17 * 3


def test_rle_flow_is_trained_checkpointed_and_resumed(synth, tmp_path):
    cfg = small_config(synth, epochs=2, val_interval=0)
    cfg["model"] = {"name": "repnet_a"}
    cfg["data"]["input_size"] = [64, 64]
    cfg = config_from_dict(cfg)
    trainer = Trainer(cfg, tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith("flow.")}
    assert before
    flow_params = {id(p) for p in trainer.model.flow.parameters()}
    optimised = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert flow_params <= optimised
    assert trainer.head.rle.flow_model is trainer.model.flow.module
    trainer.fit()
    after = {k: v for k, v in trainer.model.state_dict().items() if k.startswith("flow.")}
    assert any(not torch.equal(before[k], after[k]) for k in before), "the flow did not train"
    saved = load_checkpoint(tmp_path / "last.pth")["model"]
    for k, v in after.items():
        assert torch.equal(saved[k], v)
    resumed = Trainer(cfg, tmp_path)
    assert resumed.resume()
    for k, v in after.items():
        assert torch.equal(resumed.model.state_dict()[k], v)


def test_export_takes_decoding_and_input_size_from_the_checkpoint(synth, tmp_path):
    cfg = small_config(synth, epochs=1)
    cfg["test"] = {"decode": "softargmax", "beta": 120.0}
    Trainer(config_from_dict(cfg), tmp_path).fit()
    onnx_path = tmp_path / "tiny.onnx"
    assert cli_main(["export", "tinypose", "--checkpoint", str(tmp_path / "last.pth"), "--out", str(onnx_path)]) == 0
    from slimpose.deploy.runtime import read_onnx_metadata

    meta = read_onnx_metadata(onnx_path).to_fields()
    assert (meta["decode"], meta["beta"], list(meta["input_size"])) == ("softargmax", 120.0, [64, 48])
    # The export scored through the torch-free runtime on the same COCO-format validation set
    # gives the checkpoint's figures: same instances, crops, decoding and metric.
    config_path = tmp_path / "cfg.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    by_torch, by_onnx = tmp_path / "torch" / "metrics.json", tmp_path / "onnx" / "metrics.json"
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "last.pth"), "--out", str(by_torch)]) == 0
    assert cli_main(["eval", str(config_path), "--onnx", str(onnx_path), "--out", str(by_onnx)]) == 0
    assert json.loads(by_onnx.read_text()).keys() >= {"AP", "AP50", "AR"}
    results = [sorted(json.loads((d / "results_keypoints.json").read_text()), key=lambda r: (r["image_id"], round(sum(r["keypoints"][::3]))))
               for d in (by_torch.parent, by_onnx.parent)]
    assert len(results[0]) == len(results[1]) == 6  # every validation person, once
    kpts = [np.asarray([r["keypoints"] for r in rs]).reshape(6, 17, 3) for rs in results]
    np.testing.assert_allclose(kpts[1][..., :2], kpts[0][..., :2], atol=0.05)  # image pixels


def test_weights_tied_to_the_input_size_load_only_at_that_size(monkeypatch):
    import dataclasses

    from slimpose.models import registry

    entry = registry.get_model_entry("tinypose")
    tied = dataclasses.replace(entry, name="_tied_tiny", info=dataclasses.replace(entry.info, input_size_tied=True))
    monkeypatch.setitem(registry._REGISTRY, "_tied_tiny", tied)
    small = build_model("_tied_tiny", input_size=(64, 48))
    state = {"model": small.state_dict(), "meta": {"model_name": "_tied_tiny", "input_size": [64, 48]}}
    load_model_weights(build_model("_tied_tiny", input_size=(64, 48)), state)
    with pytest.raises(CheckpointError, match=r"tied to its input size: the checkpoint was trained at 64x48, "
                                              r"the model is built at 128x96; build it at 64x48"):
        load_model_weights(build_model("_tied_tiny", input_size=(128, 96)), state)
    # a model whose weights do not depend on the input size loads at any size
    load_model_weights(build_model("tinypose", input_size=(128, 96)), {**state, "meta": {"input_size": [64, 48]}})


def test_pretrained_backbone_weights_load_through_the_model_filter(synth, tmp_path):
    donor = build_model("repnet_a", input_size=(64, 64))
    for p in donor.parameters():
        torch.nn.init.normal_(p)
    # what an official RepVGG-A0 ImageNet checkpoint holds: backbone keys without a prefix, a classifier
    imagenet = {k[len("backbone."):]: v for k, v in donor.state_dict().items() if k.startswith("backbone.")}
    imagenet["linear.weight"] = torch.zeros(1000, 1280)
    imagenet["linear.bias"] = torch.zeros(1000)
    path = tmp_path / "RepVGG-A0-train.pth"
    torch.save(imagenet, path)
    cfg = small_config(synth, epochs=1)
    cfg["model"] = {"name": "repnet_a", "pretrained": str(path)}
    cfg["data"]["input_size"] = [64, 64]
    trainer = Trainer(config_from_dict(cfg), tmp_path / "run")
    own = trainer.model.state_dict()
    for k, v in imagenet.items():
        if not k.startswith("linear."):
            assert torch.equal(own[f"backbone.{k}"], v)
    assert not torch.equal(own["head.weight"], donor.state_dict()["head.weight"])  # the head is not in the file
    from slimpose.engine.checkpoint import load_partial_weights

    with pytest.raises(CheckpointError, match="no weight fits model 'tinypose'"):
        load_partial_weights(build_model("tinypose"), imagenet)
    # a RepNet checkpoint of its own keeps its keys: a warm restart loads every tensor
    fresh = build_model("repnet_a", input_size=(64, 64))
    report = load_partial_weights(fresh, {"model": donor.state_dict()})
    assert report["missing"] == [] and report["unmatched"] == []
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_pretrained_shipped_lsp_weight_starts_a_coco_model_by_joint_name(synth, tmp_path, capsys):
    """model.pretrained takes a shipped weight's name; its 14 LSP output rows go to the
    COCO model's joints of the same name and the report names them."""
    cfg = small_config(synth, epochs=1)
    cfg["model"] = {"name": "lpn_50", "pretrained": "lpn_50_lsp_192x144"}
    trainer = Trainer(config_from_dict(cfg), tmp_path / "run")
    out = capsys.readouterr().out
    assert "output rows carried over by joint name for 12 of 17 joints" in out
    assert "starting fresh: nose, left_eye, right_eye, left_ear, right_ear" in out
    shipped = load_checkpoint(resolve_checkpoint("lpn_50_lsp_192x144"))
    lsp = shipped["meta"]["layout"]["names"]
    own = trainer.model.state_dict()["final.weight"]
    assert torch.equal(own[trainer.layout.names.index("left_knee")], shipped["model"]["final.weight"][lsp.index("left_knee")])
    backbone = [k for k in shipped["model"] if not k.startswith("final.")]
    assert all(torch.equal(trainer.model.state_dict()[k], shipped["model"][k]) for k in backbone)


def test_channels_last_and_compiled_training_match_the_plain_run(synth, tmp_path):
    """The CPU throughput switches (benchmarks/train_throughput.py) change the memory layout
    and the execution, not the maths: the same seed gives the same losses."""
    def losses(work_dir, **switches):
        cfg = config_from_dict(small_config(synth, epochs=1, val_interval=0, max_iters_per_epoch=2, **switches))
        trainer = Trainer(cfg, work_dir)
        trainer.fit()
        return [json.loads(line)["loss"] for line in (work_dir / "log.jsonl").read_text().splitlines()]

    plain = losses(tmp_path / "plain")
    assert losses(tmp_path / "nhwc", channels_last=True) == pytest.approx(plain, rel=1e-4)
    assert losses(tmp_path / "compiled", compile=True) == pytest.approx(plain, rel=1e-4)
    # checkpoints of a compiled run load into a plain model (no "_orig_mod." prefixes)
    load_model_weights(build_model("tinypose", width=8, deconv_channels=16), tmp_path / "compiled" / "last.pth")


def test_the_pooled_rle_heads_dense_term_trains_repnet(synth, tmp_path):
    from slimpose.heads.pooled_rle import PooledRLEHead

    cfg = small_config(synth, epochs=1, val_interval=0, max_iters_per_epoch=2)
    cfg["model"] = {"name": "repnet_a", "kwargs": {"init_std": 0.001},
                    "head": {"dense_weight": 10.0, "dense_target": "displacement"}}
    cfg["data"]["input_size"] = [64, 64]
    trainer = Trainer(config_from_dict(cfg), tmp_path / "repnet")
    assert isinstance(trainer.head, PooledRLEHead) and trainer.head.options.dense_target == "displacement"
    assert trainer.model.position_outputs  # the head asked for the per-position outputs
    attributes = set(vars(trainer.model))
    trainer.fit()
    losses = [json.loads(line)["loss"] for line in (tmp_path / "repnet" / "log.jsonl").read_text().splitlines()]
    assert losses and all(math.isfinite(v) for v in losses)
    assert set(vars(trainer.model)) == attributes  # training wrote nothing on the model
    channels_last = {**cfg, "train": {**cfg["train"], "channels_last": True}}
    with pytest.raises(ConfigError, match=r"train.channels_last: on a CPU, oneDNN's channels-last convolution backward"):
        Trainer(config_from_dict(channels_last), tmp_path / "repnet_nhwc")
    tiny = small_config(synth)
    tiny["model"]["head"] = {"dense_weight": 1.0}
    with pytest.raises(ConfigError, match=r"model.head: HeatmapHead takes no options, got dense_weight"):
        Trainer(config_from_dict(tiny), tmp_path / "tiny")


def test_auxiliary_heatmaps_train_repnet_and_teach_the_dense_term(synth, tmp_path):
    cfg = small_config(synth, epochs=1, val_interval=0, max_iters_per_epoch=2)
    cfg["model"] = {"name": "repnet_a", "kwargs": {"init_std": 0.001, "auxiliary_heatmaps": True},
                    "head": {"dense_weight": 10.0, "teacher": "auxiliary_heatmaps", "heatmap_weight": 1000.0}}
    cfg["data"]["input_size"] = [64, 64]
    cfg["data"]["heatmap_sigma"] = 1.5
    trainer = Trainer(config_from_dict(cfg), tmp_path / "repnet")
    assert trainer.head.heatmap_sigma == 1.5 and trainer.head.options.heatmap_weight == 1000.0
    before = trainer.model.heatmap_decoder.module[-1].weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, trainer.model.heatmap_decoder.module[-1].weight)  # the decoder trains
    saved = load_checkpoint(tmp_path / "repnet" / "last.pth")["model"]
    assert any(k.startswith("heatmap_decoder.") for k in saved)  # resumable with its decoder
    cfg["model"]["head"] = {}
    with pytest.raises(ConfigError, match=r"model.kwargs.auxiliary_heatmaps: the heatmap decoder is trained only"):
        Trainer(config_from_dict(cfg), tmp_path / "unused")


def test_configs_of_the_previous_version_move_the_heads_fields_to_model_head(synth):
    old = small_config(synth, decomposed_regression_weight=100.0, decomposed_regression_teacher="auxiliary_heatmaps",
                       auxiliary_heatmap_weight=1e6, head_refit_crops=4000, head_refit_ridge=1.0,
                       decomposed_regression_sigma=1.0, head_refit_huber=0.05)
    cfg = config_from_dict(old)
    assert cfg.model.head == {"dense_weight": 100.0, "teacher": "auxiliary_heatmaps", "heatmap_weight": 1e6,
                              "refit_crops": 4000}  # values at their defaults are dropped
    assert not hasattr(cfg.train, "head_refit_crops")
    assert config_from_dict(small_config(synth, head_refit_crops=0)).model.head == {}


def test_without_a_terminal_training_prints_plain_progress_lines(synth, tmp_path, monkeypatch, capsys):
    from slimpose.engine import progress

    monkeypatch.setattr(progress, "PLAIN_PROGRESS_SECONDS", 0.0)
    cfg = small_config(synth, epochs=1, val_interval=0)
    cfg["data"]["batch_size"] = 4  # 12 images: 3 iterations
    Trainer(config_from_dict(cfg), tmp_path).fit()
    captured = capsys.readouterr()  # pytest's capture: stderr is no terminal, so no tqdm bar
    lines = [line.strip() for line in captured.out.splitlines() if "iteration " in line]
    assert len(lines) >= 1, captured.out
    assert lines[0].startswith("epoch 1/1  iteration 1/") and " loss " in lines[0] and lines[0].endswith(" img/s")
    assert not any(line.startswith(f"epoch 1/1  iteration {n}/{n} ") for line in lines for n in range(2, 9))
