"""Single-process and torchrun (DDP) runs through one small interface."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group that torchrun describes in the environment, if any.

    NCCL on CUDA, gloo on CPU. Without torchrun's variables this is a single process.
    """
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=torch.device("cuda" if want_cuda else "cpu"))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, dev)


def shutdown_distributed(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_gather_objects(obj, info: DistInfo) -> list:
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo):
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def reduce_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a scalar over ranks (the loss shown in logs and checked for NaN)."""
    if not info.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / info.world_size


def broadcast_buffers(model: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics). DDP broadcasts them
    before each training forward, so after the last step every rank holds statistics
    updated by its own batch; evaluation and the head refit must all read the model that
    rank 0 checkpoints."""
    if info.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)
