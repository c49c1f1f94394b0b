"""Turn a trained model into its deployed form."""

from __future__ import annotations

import copy

import torch.nn as nn


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Call ``reparameterize()`` on every module that has one (BN folding, branch merging).

    Children are converted before their parents, so a block that merges branches sees
    its sub-modules still in training form only if it handles them itself. The result
    is in eval mode: a deployed model has no training behaviour left.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for module in list(model.modules()):
        if module is not model and hasattr(module, "reparameterize"):
            module.reparameterize()
    if hasattr(model, "reparameterize"):
        model.reparameterize()
    return model
