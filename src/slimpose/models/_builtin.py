"""Imports every built-in model file so that its variants are registered."""

from slimpose.models import tiny  # noqa: F401
from slimpose.models import lpn  # noqa: F401
from slimpose.models import repnet  # noqa: F401
from slimpose.models import hrnet  # noqa: F401
from slimpose.models import lgm_pose  # noqa: F401
