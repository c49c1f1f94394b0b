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

# Importing the family files runs their @register_model decorators; the registry itself
# imports none of them, so the families can import it without a cycle.
from slimpose.models import hrnet, lgm_pose, lpn, repnet, tiny  # noqa: E402,F401

__all__ = ["IMAGENET_MEAN_RGB", "IMAGENET_STD_RGB", "ModelInfo", "ModelEntry", "PaperFigures", "build_model", "default_decode", "get_model_entry", "list_models", "register_model"]
