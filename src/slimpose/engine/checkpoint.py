"""Checkpoints: tensors and plain data only, written atomically, loaded with weights_only."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from slimpose.errors import CheckpointError
from slimpose.io import atomic_write
from slimpose.models import build_model


# The state dicts of weights a checkpoint carries, each with its digest under DIGESTS:
# torch.load checks no checksum, so without them a flipped bit would load silently.
WEIGHT_ENTRIES = ("model", "train_weights")
DIGESTS = "weights_sha256"


def weights_digest(weights: dict) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Write to a temporary file beside ``path``, then rename: a crash mid-write never
    leaves a truncated checkpoint where a good one was. The weights' digests go with them."""
    digests = {key: weights_digest(state[key]) for key in WEIGHT_ENTRIES if isinstance(state.get(key), dict)}
    with atomic_write(path, "wb") as f:
        try:
            torch.save({**state, DIGESTS: digests}, f)
        except RuntimeError as e:
            # torch's zip writer reports a failed write (a full disk) as a RuntimeError
            # chained to the OSError; the OSError is what callers can act on.
            cause = e.__cause__ or e.__context__
            if isinstance(cause, OSError):
                raise cause from None
            raise


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"{path}: cannot be read as a slimpose checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(state).__name__}")
    _check_digests(state, path)
    return state


def _check_digests(state: dict, path: Path) -> None:
    """Checkpoints written before digests were stored have none and load as they are."""
    for key, expected in (state.get(DIGESTS) or {}).items():
        weights = state.get(key)
        if not isinstance(weights, dict) or weights_digest(weights) != expected:
            raise CheckpointError(f"{path}: {key}: the weights do not match the digest stored with them: "
                                  f"the file is damaged; use another copy")


def model_state_from(state: dict) -> dict:
    """The model's state dict from a slimpose checkpoint or a bare state dict."""
    inner = state.get("model", state)
    if not isinstance(inner, dict):
        raise CheckpointError("checkpoint: field 'model' is not a state dict")
    # DDP-saved weights carry a 'module.' prefix; training saves the unwrapped model,
    # but checkpoints from other tools often do not.
    if inner and all(k.startswith("module.") for k in inner):
        inner = {k[len("module."):]: v for k, v in inner.items()}
    return inner


def load_model_weights(model: nn.Module, checkpoint: str | Path | dict) -> dict:
    """Load weights strictly; on any mismatch, name the keys. Returns the checkpoint dict."""
    source = str(checkpoint) if not isinstance(checkpoint, dict) else "checkpoint"
    state = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    weights = model_state_from(state)
    _check_input_size(model, state, source)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shape = sorted(k for k in set(own) & set(weights) if tuple(own[k].shape) != tuple(weights[k].shape))
    if missing or unexpected or shape:
        def few(keys):
            return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {few(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {few(unexpected)}")
        if shape:
            parts.append("shape mismatch: " + few([f"{k} {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}" for k in shape]))
        saved = (state.get("meta") or {}).get("model_name")
        hint = f" (checkpoint is for model {saved!r})" if saved else ""
        if shape and _input_size_tied(model):
            hint += (f"; {model.model_name!r} has weights tied to its input size (built at "
                     f"{_hxw(model.input_size)}): build it at the size the weights were trained at")
        raise CheckpointError(f"{source}: does not fit model {getattr(model, 'model_name', type(model).__name__)!r}{hint}: " + "; ".join(parts))
    model.load_state_dict(weights, strict=True)
    return state


def load_partial_weights(model: nn.Module, checkpoint: str | Path | dict,
                         joint_names: list[str] | tuple[str, ...] | None = None) -> dict:
    """Start from weights of another network or a backbone alone (ImageNet RepVGG into
    RepNet's backbone): each key goes through the model's registry ``weight_filter``
    (foreign key → own key, or None to drop it; identity when the model has none), and
    whatever then matches a parameter or buffer of the same shape is loaded.

    With ``joint_names`` (the model's layout) and a checkpoint whose metadata names its
    joints in another order or set, the output layer's rows are matched by joint name:
    the rows of each joint both layouts name are copied, the others keep their
    initialisation. A checkpoint that names no joints loads by shape alone.

    Returns ``{"loaded": n, "dropped": [...], "unmatched": [...], "missing": [...],
    "joints_carried": [...], "joints_fresh": [...]}`` (the joint lists are empty when no
    rows were matched by name); loading nothing at all is a CheckpointError (the wrong
    file, or a model without a filter).
    """
    source = str(checkpoint) if not isinstance(checkpoint, dict) else "weights"
    state = load_checkpoint(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
    weights = model_state_from(state)
    info = getattr(model, "model_info", None)
    rename = (info.weight_filter if info and info.weight_filter else None) or (lambda key: key)
    source_names = ((state.get("meta") or {}).get("layout") or {}).get("names")
    by_name = bool(joint_names and source_names and list(source_names) != list(joint_names))
    joint_rows = per_joint_rows(model) if by_name else {}
    pairs = [(source_names.index(n), i) for i, n in enumerate(joint_names) if n in source_names] if by_name else []
    own = model.state_dict()
    take, dropped, unmatched = {}, [], []
    for key, value in weights.items():
        target = rename(key)
        if target is None:
            dropped.append(key)
        elif target in joint_rows:
            rows = _rows_by_name(own[target], value, joint_rows[target], len(source_names), pairs)
            (unmatched.append(key) if rows is None else take.__setitem__(target, rows))
        elif target in own and tuple(own[target].shape) == tuple(value.shape):
            take[target] = value
        else:
            unmatched.append(key)
    if not take:
        raise CheckpointError(f"{source}: no weight fits model {getattr(model, 'model_name', type(model).__name__)!r} "
                              f"({len(unmatched)} unmatched, e.g. {', '.join(unmatched[:3]) or 'none'})")
    model.load_state_dict(take, strict=False)
    carried = [joint_names[i] for _, i in pairs]
    return {"loaded": len(take), "dropped": dropped, "unmatched": unmatched,
            "missing": sorted(set(own) - set(take)),
            "joints_carried": carried,
            "joints_fresh": [n for n in joint_names if n not in carried] if by_name else []}


def per_joint_rows(model: nn.Module) -> dict[str, int]:
    """The model's tensors that hold a block of rows per joint (its output layers), each
    with its rows per joint: the keys whose first dimension grows when the same
    registered model is built with one joint more (on the meta device, so nothing is
    allocated). Rows are joint-major, as every output layer here lays them out."""
    k = model.num_joints
    with torch.device("meta"):
        wider = build_model(model.model_name, num_joints=k + 1, input_size=model.input_size,
                            **getattr(model, "build_kwargs", {})).state_dict()
    rows = {}
    for key, tensor in model.state_dict().items():
        other = wider.get(key)
        if other is not None and tensor.dim() and other.shape[0] != tensor.shape[0]:
            per_joint, rest = divmod(tensor.shape[0], k)
            if not rest and other.shape[0] == per_joint * (k + 1):
                rows[key] = per_joint
    return rows


def _rows_by_name(own: torch.Tensor, value: torch.Tensor, per_joint: int, source_joints: int,
                  pairs: list[tuple[int, int]]) -> torch.Tensor | None:
    """``own`` with the row blocks of the joints in ``pairs`` (source, own) taken from
    ``value``; None when ``value`` is not that layer for ``source_joints`` joints."""
    if value.shape[0] != per_joint * source_joints or tuple(value.shape[1:]) != tuple(own.shape[1:]):
        return None
    rows = own.clone()
    for src, dst in pairs:
        rows[dst * per_joint:(dst + 1) * per_joint] = value[src * per_joint:(src + 1) * per_joint]
    return rows


def _input_size_tied(model: nn.Module) -> bool:
    info = getattr(model, "model_info", None)
    return bool(info and info.input_size_tied)


def _hxw(size) -> str:
    return f"{int(size[0])}x{int(size[1])}"


def _check_input_size(model: nn.Module, state: dict, source: str) -> None:
    """A model whose weight shapes depend on the input size (LGM-Pose's token MLPs)
    loads only a checkpoint trained at its own input size: say so, before the shapes do."""
    saved = (state.get("meta") or {}).get("input_size")
    if not (_input_size_tied(model) and saved) or tuple(saved) == tuple(model.input_size):
        return
    raise CheckpointError(
        f"{source}: {model.model_name!r} has weights tied to its input size: the checkpoint was trained at "
        f"{_hxw(saved)}, the model is built at {_hxw(model.input_size)}; build it at {_hxw(saved)} "
        f"(data.input_size, or --input {_hxw(saved)})")


def rng_state() -> dict:
    """RNG states as tensors and plain data (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(("MT19937", npst["key"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"]))
    inner, version, gauss = state["python"]
    random.setstate((version, tuple(inner), gauss))


def model_from_checkpoint(state: dict, source: str) -> nn.Module:
    """The model a checkpoint's ``meta`` describes (name, arguments, input size, joints),
    with its weights loaded; the checkpoint is its own config."""
    meta = state.get("meta") or {}
    names = (meta.get("layout") or {}).get("names")
    if not meta.get("model_name") or not meta.get("input_size") or not names:
        raise CheckpointError(f"{source}: meta: names no model, input size or joints; "
                              "a checkpoint written by slimpose train has them")
    model = build_model(meta["model_name"], num_joints=len(names), input_size=tuple(meta["input_size"]),
                        **(meta.get("model_kwargs") or {}))
    load_model_weights(model, state)
    return model
