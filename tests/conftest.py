"""Fixtures shared by the test folders."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Small models and many tiny ops: one thread is faster than several on a 2-core
    machine and immune to OpenMP spin-wait stalls when the machine is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
