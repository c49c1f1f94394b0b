"""Does RepNet-A's backbone learn at all? Train it under a heatmap decoder instead of RLE.

Registers, in this process only, ``repnet_a_heatmap``: RepNet-A's RepVGG-A0 backbone and
multi-level fusion (48 channels at stride 16) followed by SimpleBaseline's decoder cut to
two 2x deconvolutions (64 channels) and a 1x1 conv to the joints' heatmaps at stride 4.
It then runs ``slimpose train`` with the remaining arguments, so a heatmap config
(``configs/lpn_50_lspet_128x96.yaml``: LPN-50's data, optimiser, schedule and flip test)
trains it under exactly LPN-50's budget and its val PCK can be read beside LPN-50's.

``--init-std S`` draws every conv of the network from N(0, S) as LPN and HRNet do
(0 keeps PyTorch's default init, which RepNet-A uses). With BatchNorm after every conv the
weights' scale does not change the function, only how far an Adam step moves it:
smaller weights take relatively larger steps.

The checkpoint's backbone and fusion keys are RepNet-A's, so a RepNet-A run can start from
them: ``slimpose train configs/repnet_a_lspet_128x96.yaml --set model.pretrained=RUN/best.pth``.

    python projects/repnet_lspet/probes/repnet_heatmap_backbone.py --init-std 0.001 configs/lpn_50_lspet_128x96.yaml \\
        --work-dir runs/repnet_a_heatmap --set model.name=repnet_a_heatmap train.val_interval=4
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn as nn

from slimpose.models.layers import deconv_heatmap_decoder, init_weights_normal
from slimpose.models.registry import register_model
from slimpose.models.repnet import NUM_BLOCKS_A, MultiLevelFusion, RepVGG


class RepNetHeatmap(nn.Module):
    """RepNet-A's backbone and fusion → 2 x (deconv-BN-ReLU, 64) → 1x1 conv to K heatmaps."""

    def __init__(self, num_joints: int, init_std: float = 0.0, fusion_channels: int = 48):
        super().__init__()
        self.backbone = RepVGG(NUM_BLOCKS_A, (0.75, 2.5))
        self.neck = MultiLevelFusion(tuple(self.backbone.widths[2:]), fusion_channels)
        self.decoder = deconv_heatmap_decoder(fusion_channels, num_joints)
        if init_std > 0:
            init_weights_normal(self, std=init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.neck(self.backbone(x)))


def register(init_std: float) -> None:
    @register_model("repnet_a_heatmap", output_kind="heatmap", decode="softargmax")
    def repnet_a_heatmap(num_joints: int = 17, input_size=(256, 192), **kw) -> RepNetHeatmap:
        """RepNet-A's backbone and fusion under a heatmap decoder (a diagnostic)."""
        return RepNetHeatmap(num_joints, init_std=init_std, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-std", type=float, default=0.0)
    args, train_args = ap.parse_known_args()
    register(args.init_std)
    from slimpose.cli import main as slimpose_main

    return slimpose_main(["train", *train_args])


if __name__ == "__main__":
    sys.exit(main())
