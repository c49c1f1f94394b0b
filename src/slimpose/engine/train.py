"""The training loop: one engine for every model (its head owns the loss), on one process
or many (torchrun → DDP), with atomic checkpoints, exact resume and callbacks
(:mod:`slimpose.engine.callbacks`) for what happens around the steps."""

from __future__ import annotations

import math
import sys
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from slimpose.config import ExperimentConfig, save_config
from slimpose.data.dataset import build_dataset
from slimpose.data.layouts import resolve_layout
from slimpose.data.mixed import MixedSource, RatioSampler
from slimpose.engine.builders import (build_codec_for, build_head_for, build_model_for, build_optimizer,
                                      checkpoint_meta, learning_rate, seed_everything)
from slimpose.engine.callbacks import Callback, default_callbacks
from slimpose.engine.checkpoint import load_model_weights, load_partial_weights, rng_state, save_checkpoint, set_rng_state
from slimpose.engine.distributed import (DistInfo, barrier, broadcast_buffers, init_distributed, reduce_mean,
                                        shutdown_distributed)
from slimpose.engine.distill import HeatmapTeacher
from slimpose.engine.divergence import LossWatch, non_finite_weights
from slimpose.engine.evaluate import evaluate
from slimpose.engine.progress import EpochReport, PlainProgress
from slimpose.engine.rundir import (claim_work_dir, copy_last_checkpoint, keep_previous_config_file, locked_work_dir,
                                    restore_run_files, resume_command, write_log)
from slimpose.errors import ConfigError, OutputError, TrainingDiverged
from slimpose.io import write_json_atomic
from slimpose.models import get_model_entry
from slimpose.signals import StopSignals
from slimpose.weights import resolve_checkpoint


@dataclass
class _State:
    stage: int = 0
    epoch: int = 0  # next epoch to run
    best: float = -math.inf
    best_epoch: int = -1
    stage_best: float = -math.inf
    iters_in_stage: int = 0


class Trainer:
    """Builds a run from its config (data, head, model, optimiser, loaders) and trains it;
    ``callbacks`` come after the defaults (weight average, the head's stage-end work)."""

    def __init__(self, cfg: ExperimentConfig, work_dir: str | Path, info: DistInfo | None = None,
                 callbacks: list[Callback] | None = None):
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.info = info or init_distributed()
        tc = cfg.train
        if tc.stages < 1:
            raise ConfigError("train.stages: must be at least 1")
        if tc.stages > 1 and not 0 <= tc.restart_epoch < tc.epochs:
            raise ConfigError(f"train.restart_epoch: must lie in [0, {tc.epochs}) for an iterative schedule")
        seed_everything(tc.seed + self.info.rank, tc.deterministic)

        self.layout = resolve_layout(cfg)
        self.output_kind = get_model_entry(cfg.model.name).output_kind
        self.codec = build_codec_for(cfg, self.output_kind)
        self.train_set = build_dataset(cfg, "train", self.codec)
        self.val_set = build_dataset(cfg, "val", self.codec) if cfg.data.val.ann_file else None
        if self.info.is_main:
            for split, ds in (("train", self.train_set), ("val", self.val_set)):
                if ds is not None:
                    print(f"slimpose: {split} data {ds.source.summary()}")
            for part in (self.train_set.source.parts if isinstance(self.train_set.source, MixedSource) else []):
                print(f"slimpose: train data {part.report(self.layout)}")

        self.head = build_head_for(cfg)
        self.model = build_model_for(cfg, self.head.model_kwargs())
        if cfg.model.pretrained:
            self._load_pretrained(cfg.model.pretrained)
        self.model = self.model.to(self.info.device)
        problem = get_model_entry(cfg.model.name).info.channels_last_cpu_problem
        if tc.channels_last and self.info.device.type == "cpu" and problem:
            raise ConfigError(f"train.channels_last: {problem}")
        self.memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.head.bind(self.model)
        self.head.to(self.info.device)
        self.teacher = self._build_teacher()
        self.optimizer = build_optimizer(tc, self.model)
        self.callbacks = [*default_callbacks(self), *(callbacks or [])]
        self.amp = tc.amp and self.info.device.type == "cuda"
        if tc.amp and not self.amp and self.info.is_main:
            print("slimpose: train.amp needs CUDA; training in float32", file=sys.stderr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if isinstance(self.train_set.source, MixedSource):  # each training set its share by ratio
            self.sampler = RatioSampler(self.train_set.source.parts, num_replicas=self.info.world_size,
                                        rank=self.info.rank, seed=tc.seed)
        else:
            self.sampler = DistributedSampler(self.train_set, num_replicas=self.info.world_size, rank=self.info.rank,
                                              shuffle=True, seed=tc.seed, drop_last=True)
        self.loader = DataLoader(self.train_set, batch_size=cfg.data.batch_size, sampler=self.sampler,
                                 num_workers=cfg.data.workers, drop_last=True,
                                 pin_memory=self.info.device.type == "cuda")
        if len(self.loader) == 0:
            raise ConfigError(f"data.batch_size: {cfg.data.batch_size} per process is larger than the "
                              f"{len(self.train_set)} training instances")
        self.net = (DistributedDataParallel(self.model, device_ids=[self.info.local_rank] if self.info.device.type == "cuda" else None)
                    if self.info.distributed else self.model)
        if tc.compile:
            self.net = torch.compile(self.net)
        self.main_metric = tc.save_metric or (self.val_set.source.main_metric if self.val_set else "")
        self.state = _State()
        self.records: list[dict] = []  # log.jsonl's lines: one per committed epoch
        self.loss_watch = LossWatch()

    def _build_teacher(self) -> HeatmapTeacher | None:
        tc = self.cfg.train
        if not tc.distill_from:
            return None
        if self.output_kind != "heatmap":
            raise ConfigError(f"train.distill_from: {self.cfg.model.name} gives {self.output_kind} outputs; "
                              "distillation blends heatmaps")
        teacher = HeatmapTeacher(tc.distill_from, self.layout.names, tc.distill_weight, self.info.device,
                                 self.layout.flip_index if tc.distill_flip else None)
        if self.info.is_main:
            mirrored = ", with its flip test" if tc.distill_flip else ""
            print(f"slimpose: train.distill_from: {tc.distill_from} ({teacher.model.model_name} at "
                  f"{teacher.input_size[0]}x{teacher.input_size[1]}{mirrored}) gives {tc.distill_weight:g} of each target")
        return teacher

    # ---------------------------------------------------------------- checkpoints
    def _load_pretrained(self, name_or_path: str) -> None:
        """model.pretrained: a checkpoint file or a shipped weight's name; the output
        layer's rows follow the joints by name when the layouts differ."""
        report = load_partial_weights(self.model, resolve_checkpoint(name_or_path), joint_names=self.layout.names)
        if not self.info.is_main:
            return
        print(f"slimpose: model.pretrained: {report['loaded']} tensors from {name_or_path} "
              f"({len(report['dropped'])} dropped by the model's filter, {len(report['unmatched'])} unmatched, "
              f"{len(report['missing'])} of the model's left at their initialisation)")
        if report["joints_carried"] or report["joints_fresh"]:
            carried, fresh = report["joints_carried"], report["joints_fresh"]
            print(f"slimpose: model.pretrained: output rows carried over by joint name for {len(carried)} of "
                  f"{len(carried) + len(fresh)} joints ({', '.join(carried) or 'none'}); "
                  f"starting fresh: {', '.join(fresh) or 'none'}")

    def _checkpoint(self, improved: list[str], summary: dict | None) -> dict:
        s = self.state
        # "model" is what evaluation and export read; a callback may replace it (the average).
        weights = {"model": self.model.state_dict()}
        for callback in self.callbacks:
            weights.update(callback.checkpoint_entries(self))
        return {
            **weights,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "stage": s.stage, "epoch": s.epoch, "best": s.best, "best_epoch": s.best_epoch,
            "stage_best": s.stage_best, "iters_in_stage": s.iters_in_stage,
            "rng": rng_state(),
            "config": self.cfg.to_dict(),
            "meta": checkpoint_meta(self.cfg, self.output_kind),
            # What rundir.restore_run_files rebuilds from this checkpoint if the process dies
            # before the files after it are written: the copies it was also saved as, the log
            # and, when training ends with it, the summary.
            "improved": improved,
            "log": self.records,
            "summary": summary,
            "loss_level": self.loss_watch.state(),
        }

    def _commit(self, improved: list[str], summary: dict | None) -> None:
        """Save the epoch: ``last.pth`` first (a resume starts from it), then its copies
        (best.pth, ...) and the log, which a resume restores from it if they are missing
        (the process killed outright)."""
        if self.info.is_main:
            broken = non_finite_weights(self.model)
            if broken:
                s = self.state
                raise TrainingDiverged(f"weights became non-finite ({', '.join(broken[:3])}) in stage {s.stage} epoch "
                                       f"{s.epoch}; training stopped and {self._kept_checkpoint()}. Lower train.lr "
                                       f"or add train.clip_grad")
            # A Ctrl-C or SIGTERM here takes effect once the epoch's files are all written.
            with StopSignals() as stop:
                self._write_epoch_files(improved, summary)
            stop.redeliver()
        barrier(self.info)

    def _write_epoch_files(self, improved: list[str], summary: dict | None) -> None:
        last = self.work_dir / "last.pth"
        try:
            save_checkpoint(self._checkpoint(improved, summary), last)
        except OSError as e:
            raise self._write_failed(last, e) from None
        try:
            copy_last_checkpoint(self.work_dir, improved)
            write_log(self.work_dir, self.records)
        except OSError as e:
            raise self._write_failed(self.work_dir, e) from None

    def _write_failed(self, target: Path, error: OSError) -> OutputError:
        return OutputError(f"{target}: cannot be written ({error.strerror or error}); {self._kept_checkpoint()}. "
                           f"Make room, then continue with: {resume_command(self.work_dir)}")

    def _kept_checkpoint(self) -> str:
        last = self.work_dir / "last.pth"
        return f"the last good checkpoint {last} is intact" if last.exists() else "no checkpoint was written yet"

    def resume(self, path: str | Path | None = None) -> bool:
        path = Path(path) if path else self.work_dir / "last.pth"
        if not path.is_file():
            return False
        ckpt = load_model_weights(self.model, path)
        for callback in self.callbacks:
            callback.on_resume(self, ckpt)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = _State(ckpt["stage"], ckpt["epoch"], ckpt["best"], ckpt["best_epoch"], ckpt["stage_best"],
                            ckpt["iters_in_stage"])
        set_rng_state(ckpt["rng"])
        self.loss_watch.load_state(ckpt.get("loss_level"))
        if self.info.is_main:
            self.records = restore_run_files(self.work_dir, ckpt)
            print(f"slimpose: resumed from {path} at stage {self.state.stage} epoch {self.state.epoch}")
        return True

    def _start_stage(self, stage: int) -> None:
        """Later stages of the iterative schedule start from the previous stage's best
        weights (its last weights if it was never validated) with a fresh optimizer."""
        prev = self.work_dir / f"stage{stage - 1}_best.pth"
        if not prev.is_file():
            prev = self.work_dir / "last.pth"
        load_model_weights(self.model, prev)
        self.optimizer = build_optimizer(self.cfg.train, self.model)
        for callback in self.callbacks:
            callback.on_stage_start(self)
        self.state = _State(stage, self.cfg.train.restart_epoch, self.state.best, self.state.best_epoch)
        if self.info.is_main:
            print(f"slimpose: stage {stage} starts from {prev.name} at epoch {self.state.epoch}")

    # ---------------------------------------------------------------- loop
    def _out_of_time(self) -> bool:
        budget = self.cfg.train.max_minutes
        if budget <= 0:  # the same config on every rank, so no collective is needed
            return False
        # Every rank must stop at the same iteration; rank 0's clock decides.
        over = torch.tensor(float(time.perf_counter() - self._fit_start > 60 * budget))
        if self.info.distributed:
            torch.distributed.broadcast(over, 0)
        return bool(over.item())

    def _train_epoch(self) -> dict:
        tc, s = self.cfg.train, self.state
        self.net.train()
        self.sampler.set_epoch(s.epoch)
        self.train_set.set_epoch(s.epoch)
        n_iters = len(self.loader) if tc.max_iters_per_epoch <= 0 else min(len(self.loader), tc.max_iters_per_epoch)
        label = f"epoch {s.epoch + 1}/{tc.epochs}"
        label = f"stage {s.stage} {label}" if tc.stages > 1 else label
        terminal = sys.stderr.isatty()
        bar = tqdm(total=n_iters, desc=label, leave=False, dynamic_ncols=True,
                   disable=not (self.info.is_main and terminal))
        plain = PlainProgress(label, n_iters, enabled=self.info.is_main and not terminal)
        loss_sum, seen, start = 0.0, 0, time.perf_counter()
        lr = 0.0
        done = 0
        for i, batch in enumerate(self.loader):
            if i >= n_iters:
                break
            lr = learning_rate(tc, s.epoch + i / n_iters, s.stage, s.iters_in_stage)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            images = batch["image"].to(self.info.device, non_blocking=True, memory_format=self.memory_format)
            target = batch["target"].to(self.info.device, non_blocking=True)
            weight = batch["target_weight"].to(self.info.device, non_blocking=True)
            if self.teacher is not None:
                target = self.teacher.blend(images, target)
            with torch.autocast(self.info.device.type, enabled=self.amp):
                output = self.net(images)
            loss = self.head(output, target, weight)
            shown = reduce_mean(loss.detach(), self.info).item()
            problem = self.loss_watch.problem(shown)
            if problem:
                raise TrainingDiverged(
                    f"{problem} at stage {s.stage}, epoch {s.epoch + 1}, iteration {i + 1} (lr {lr:.3g}): the run "
                    f"diverged; training stopped and {self._kept_checkpoint()}. Lower train.lr, add "
                    f"train.clip_grad, or check the data.")
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if tc.clip_grad > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for callback in self.callbacks:
                callback.on_step_end(self)
            s.iters_in_stage += 1
            done += 1
            loss_sum += shown
            seen += images.shape[0] * self.info.world_size
            if (i + 1) % max(tc.log_interval, 1) == 0 or i + 1 == n_iters:
                bar.set_postfix(loss=f"{loss_sum / (i + 1):.3g}", lr=f"{lr:.2e}",
                                img_s=f"{seen / (time.perf_counter() - start):.1f}")
            bar.update(1)
            plain.update(i + 1, loss_sum / (i + 1), seen / (time.perf_counter() - start))
            if self._out_of_time():
                break
        bar.close()
        elapsed = time.perf_counter() - start
        return {"loss": loss_sum / max(done, 1), "lr": lr, "iterations": done, "images_per_s": seen / max(elapsed, 1e-9),
                "epoch_seconds": round(elapsed, 2)}

    def unaugmented_train_set(self):
        """The training instances cropped as a test crop is (what a head's refit reads)."""
        return build_dataset(self.cfg, "train", self.codec, augment=False)

    def validate(self, out_dir: Path | None = None) -> dict:
        broadcast_buffers(self.model, self.info)
        try:
            return self._evaluate(out_dir)
        except TrainingDiverged as e:
            raise TrainingDiverged(f"{e} at epoch {self.state.epoch}; training stopped and "
                                   f"{self._kept_checkpoint()}. Lower train.lr or add train.clip_grad") from None

    def _evaluate(self, out_dir: Path | None) -> dict:
        return evaluate(self.model, self.val_set, self.codec, flip=self.cfg.test.flip,
                        batch_size=self.cfg.data.val_batch_size, workers=self.cfg.data.workers, info=self.info,
                        out_dir=out_dir, amp=self.amp)

    def fit(self, keep_previous_config: bool = False) -> dict:
        """Train to the end of the schedule (or of ``train.max_minutes``). With
        ``keep_previous_config`` (a resume with a changed config) the run's config.yaml is
        kept beside the new one, which replaces it only now that the run could be built."""
        tc, s = self.cfg.train, self.state
        if self.info.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            if keep_previous_config and (self.work_dir / "config.yaml").is_file():
                kept = keep_previous_config_file(self.work_dir, s.epoch)
                print(f"slimpose: the previous config is kept as {kept}")
            save_config(self.cfg, self.work_dir / "config.yaml")
        self._fit_start = time.perf_counter()
        report = EpochReport(tc, self.main_metric)
        stopped = False
        summary = self._summary(stopped)
        while s.stage < tc.stages and not stopped:
            if s.epoch >= tc.epochs:  # this stage finished before a resume
                if s.stage + 1 >= tc.stages:
                    break
                self._start_stage(s.stage + 1)
                s = self.state
                continue
            record = {"stage": s.stage, "epoch": s.epoch + 1, **self._train_epoch()}
            s.epoch += 1
            stopped = self._out_of_time()
            if stopped and self.info.is_main:
                print(f"slimpose: train.max_minutes={tc.max_minutes} reached during epoch {s.epoch}; "
                      f"validating and stopping", flush=True)
            stage_end = s.epoch >= tc.epochs
            if stage_end or stopped:
                for callback in self.callbacks:
                    callback.on_stage_end(self, record)
            due = stage_end or stopped or (tc.val_interval > 0 and s.epoch % tc.val_interval == 0)
            improved = []
            if self.val_set is not None and due:
                with ExitStack() as weights:
                    for callback in self.callbacks:
                        weights.enter_context(callback.evaluation_weights(self))
                    metrics = self.validate(self.work_dir / "val_predictions")
                record.update({f"val/{k}": v for k, v in metrics.items()})
                value = metrics.get(self.main_metric, -math.inf)
                if value > s.stage_best:
                    s.stage_best = value
                    if tc.stages > 1:
                        improved.append(f"stage{s.stage}_best.pth")
                if value > s.best:
                    s.best, s.best_epoch = value, s.epoch
                    improved.append("best.pth")
            self.records.append(record)
            ends = stopped or (stage_end and s.stage + 1 >= tc.stages)
            summary = self._summary(stopped)
            self._commit(improved, summary if ends else None)
            if self.info.is_main:
                print(report.line(record, s.stage, s.epoch), flush=True)
        if self.info.is_main:
            write_json_atomic(self.work_dir / "summary.json", summary)
        return summary

    def _summary(self, stopped: bool) -> dict:
        s = self.state
        validated = [r for r in self.records if any(k.startswith("val/") for k in r)]
        metrics = {k[len("val/"):]: v for k, v in validated[-1].items() if k.startswith("val/")} if validated else {}
        return {"best": s.best if s.best > -math.inf else None, "best_epoch": s.best_epoch,
                "stopped_by_time_budget": stopped, "minutes": round((time.perf_counter() - self._fit_start) / 60, 2),
                "main_metric": self.main_metric, "metrics": metrics, "work_dir": str(self.work_dir)}


def train(cfg: ExperimentConfig, work_dir: str | Path, resume: bool = False, overwrite: bool = False,
          keep_previous_config: bool = False, callbacks: list[Callback] | None = None) -> dict:
    """Train ``cfg`` into ``work_dir`` (rank 0 holds the folder's lock throughout): a new
    run refuses a folder holding another unless ``overwrite``; ``resume`` continues the
    run there from its last.pth."""
    info = init_distributed()
    work_dir = Path(work_dir)
    try:
        with locked_work_dir(work_dir) if info.is_main else nullcontext():
            if info.is_main:
                if not resume:
                    claim_work_dir(work_dir, overwrite, resume_command(work_dir))
            barrier(info)
            trainer = Trainer(cfg, work_dir, info, callbacks)
            if resume and not trainer.resume() and info.is_main:
                print(f"slimpose: --resume given but {work_dir / 'last.pth'} does not exist; starting fresh")
            return trainer.fit(keep_previous_config)
    finally:
        shutdown_distributed(info)
