"""Pose networks, one file per family, each variant registered by name."""

from slimpose.models.registry import (
    IMAGENET_MEAN_RGB,
    IMAGENET_STD_RGB,
    ModelInfo,
    ModelEntry,
    PaperFigures,
    build_model,
    default_decode,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "ModelInfo", "ModelEntry", "PaperFigures", "build_model", "default_decode", "get_model_entry", "list_models", "register_model"]
