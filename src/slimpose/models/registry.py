"""A tiny model registry: a name maps to a factory, its metadata and the paper's figures.

    @register_model("lpn_50", output_kind="heatmap", decode="softargmax",
                    paper=[PaperFigures(2.91, 1.068)])
    def lpn_50(num_joints=17, input_size=(256, 192), **kw): ...

Every factory takes ``num_joints`` and ``input_size`` (H, W), so configs, export and the
complexity table can build any model the same way. The metadata (:class:`ModelInfo`:
default input size, output stride, normalisation, default decoding, whether the weights
are tied to the input size) is what the data pipeline, codecs, export and the runtime
read instead of repeating constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch.nn as nn

from slimpose.data import transforms


@dataclass(frozen=True)
class PaperFigures:
    """A (params, GMACs) pair published for a model, with the setting it was measured in.

    ``gmacs`` is in units of 1e9 multiply-accumulates; ``form`` says whether the figure is
    for the training form or the deployed (re-parameterised, BN-folded) form.
    """

    params_m: float
    gmacs: float | None
    input_size: tuple[int, int] = (256, 192)
    num_joints: int = 17
    form: str = "train"
    note: str = ""


# ImageNet statistics in 0-255 RGB, what every model here is normalised with: defined
# once beside the torch-free pipeline that applies them (the runtime reads the file).
IMAGENET_MEAN_RGB, IMAGENET_STD_RGB = transforms.IMAGENET_MEAN_RGB, transforms.IMAGENET_STD_RGB


@dataclass(frozen=True)
class ModelInfo:
    """What a model expects around it, beyond its weights.

    ``output_stride`` is the input/heatmap size ratio (None for coordinate outputs).
    ``input_size_tied``: the weights' shapes depend on the input size (LGM-Pose's token
    MLPs), so a checkpoint only loads into a model built at the size it was trained at.
    ``weight_filter`` maps a foreign state-dict key to the key it loads as, or None to
    drop it (partial / backbone-only weights, e.g. ImageNet RepVGG into ``backbone.``).
    ``head`` names the training head that owns the model's loss (``slimpose.heads``):
    "heatmap" (MSE), "rle" (RLE on coordinates) or "pooled_rle" (RLE of a pooled Linear,
    with its optional dense and heatmap terms and its stage-end refit).
    ``channels_last_cpu_problem``: why the model must not train channels-last on a CPU
    (empty when it can); the trainer refuses that combination with this reason.
    """

    output_kind: str = "heatmap"  # "heatmap" or "coordinate"
    input_size: tuple[int, int] = (256, 192)
    output_stride: int | None = 4
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB
    std: tuple[float, float, float] = IMAGENET_STD_RGB
    color_order: str = "RGB"
    decode: str = "argmax"
    input_size_tied: bool = False
    weight_filter: Callable[[str], str | None] | None = None
    head: str = "heatmap"
    channels_last_cpu_problem: str = ""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    factory: Callable[..., nn.Module]
    output_kind: str  # "heatmap" or "coordinate"
    paper: tuple[PaperFigures, ...] = ()
    tolerance: float = 0.02  # relative tolerance the paper figures are tested to
    description: str = ""
    defaults: dict = field(default_factory=dict)
    info: ModelInfo = field(default_factory=ModelInfo)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    output_kind: str,
    paper: list[PaperFigures] | tuple[PaperFigures, ...] = (),
    tolerance: float = 0.02,
    description: str = "",
    input_size: tuple[int, int] = (256, 192),
    output_stride: int | None = 4,
    decode: str = "argmax",
    input_size_tied: bool = False,
    weight_filter: Callable[[str], str | None] | None = None,
    head: str | None = None,
    channels_last_cpu_problem: str = "",
    **defaults,
):
    if output_kind not in ("heatmap", "coordinate"):
        raise ValueError(f"model {name!r}: output_kind must be 'heatmap' or 'coordinate'")
    info = ModelInfo(output_kind=output_kind, input_size=tuple(input_size),
                     output_stride=output_stride if output_kind == "heatmap" else None,
                     decode=decode, input_size_tied=input_size_tied, weight_filter=weight_filter,
                     head=head or ("heatmap" if output_kind == "heatmap" else "rle"),
                     channels_last_cpu_problem=channels_last_cpu_problem)

    def decorator(factory):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelEntry(name, factory, output_kind, tuple(paper), tolerance, doc, dict(defaults), info)
        return factory

    return decorator


def get_model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def default_decode(model) -> str:
    """The heatmap decoding ``model`` (a registered name, or a module from :func:`build_model`)
    is evaluated and exported with unless one is chosen: its ``ModelInfo.decode``."""
    info = get_model_entry(model).info if isinstance(model, str) else getattr(model, "model_info", None)
    return (info or ModelInfo()).decode


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model. The module gets ``output_kind``, ``num_joints``,
    ``input_size``, ``model_name`` and ``model_info`` attributes that the engine and
    exporters read."""
    entry = get_model_entry(name)
    kw = {**entry.defaults, **kwargs}
    kw.setdefault("num_joints", 17)
    kw["input_size"] = tuple(kw.get("input_size", entry.info.input_size))
    model = entry.factory(**kw)
    model.output_kind = entry.output_kind
    model.num_joints = kw["num_joints"]
    model.input_size = kw["input_size"]
    model.model_name = name
    model.model_info = entry.info
    # The other arguments, so that the same network can be built again with another
    # number of joints (engine.checkpoint finds the per-joint output rows that way).
    model.build_kwargs = {k: v for k, v in kwargs.items() if k not in ("num_joints", "input_size")}
    return model
