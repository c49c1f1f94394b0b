"""Fixtures shared by the test folders."""

import os
from pathlib import Path

import pytest
import torch

# The configs' ${data_root}: the data sets beside the clone (../shared/data), as CI lays
# them out, unless SLIMPOSE_DATA_ROOT is set already. Absolute, so that tests that change
# the working directory load the same paths.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if SHARED_DATA.is_dir():
    os.environ.setdefault("SLIMPOSE_DATA_ROOT", str(SHARED_DATA))


@pytest.fixture
def one_torch_thread():
    """Small models and many tiny ops: one thread is faster than several on a 2-core
    machine and immune to OpenMP spin-wait stalls when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
