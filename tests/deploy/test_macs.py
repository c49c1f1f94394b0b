"""count_macs counts every matrix product, not only nn.Conv / nn.Linear modules."""

from __future__ import annotations

import torch
import torch.nn as nn

from slimpose.deploy.complexity import count_macs


class _Matmuls(nn.Module):
    """Token mixing through functional products only: no module the old hooks saw."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(48, 10))

    def forward(self, x):  # x (1, 3, 8, 6) → tokens (1, 48, 3)
        t = x.flatten(2).transpose(1, 2)
        a = torch.matmul(t, t.transpose(1, 2))  # 48 x 3 x 48
        b = torch.bmm(a, t)  # 48 x 48 x 3
        c = torch.einsum("bnc,nk->bck", b, self.w)  # 3 x 48 x 10
        return c @ c.transpose(1, 2)  # 3 x 10 x 3


def test_functional_matrix_products_are_counted():
    expected = 48 * 3 * 48 + 48 * 48 * 3 + 3 * 48 * 10 + 3 * 10 * 3
    assert count_macs(_Matmuls(), (8, 6)) == expected


class _Attention(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):  # (1, 16, 4, 5) → 20 tokens of 16
        t = x.flatten(2).transpose(1, 2)
        return self.attn(t, t, t, need_weights=False)[0]


def test_multihead_attention_is_counted():
    n, d = 20, 16
    projections = 4 * n * d * d  # q, k, v and output
    scores_and_mix = 2 * n * n * d  # Q K^T and A V over all heads
    assert count_macs(_Attention(), (4, 5), in_channels=16) == projections + scores_and_mix


def test_convolutions_keep_the_papers_convention():
    conv = nn.Conv2d(3, 8, 3, padding=1, groups=1)
    deconv = nn.ConvTranspose2d(8, 4, 4, 2, 1, groups=2)
    model = nn.Sequential(conv, deconv)
    h, w = 6, 5
    assert count_macs(model, (h, w)) == 8 * 3 * 9 * h * w + 8 * (4 // 2) * 16 * h * w  # deconv per input pixel

