"""Imports every built-in model file so that its variants are registered."""

from slimpose.models import tiny  # noqa: F401
