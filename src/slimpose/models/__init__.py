"""Pose networks, one file per family, each variant registered by name."""

from slimpose.models.registry import (
    ModelEntry,
    PaperFigures,
    build_model,
    get_model_entry,
    list_models,
    register_model,
)

__all__ = ["ModelEntry", "PaperFigures", "build_model", "get_model_entry", "list_models", "register_model"]
