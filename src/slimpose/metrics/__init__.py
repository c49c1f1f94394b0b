"""Metrics: COCO OKS AP through pycocotools, MPII PCKh, LSP PCK."""
