"""Turn a trained model into its deployed form."""

from __future__ import annotations

import copy

import torch.nn as nn


def reparameterize_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Call ``reparameterize()`` on every module that has one (BN folding, branch merging).

    Modules are visited parents first (``model.modules()`` order), and a child may
    already have been converted by its parent, so every ``reparameterize()`` must
    accept its sub-modules in either form and be idempotent. The result is in eval
    mode: a deployed model has no training behaviour left.
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
