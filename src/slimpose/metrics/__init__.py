"""Metrics: COCO OKS AP through pycocotools, MPII PCKh, LSP PCK."""

# The PCK family's figures (PCK, PCKh, their @0.1 and per-joint-group values) are printed
# as percentages with one decimal, as the papers and the README write them (65.4, not
# 0.6538); the files (metrics.json, log.jsonl) keep them as fractions.
PCK_KEYS = ("PCK", "PCKh")


def is_pck_metrics(metrics) -> bool:
    """Whether ``metrics`` (a dict, or its keys, ``val/`` prefixes allowed) are PCK-family figures."""
    return any(str(k).rpartition("/")[2] in PCK_KEYS for k in metrics)


def format_metric(name: str, value, percent: bool) -> str:
    """How a metric value is printed: a fraction as ``65.4%`` when ``percent`` (a PCK
    family's figures), else with four decimals; COCO's AP and AR always as fractions (a
    layout from the data is scored with both); times (``*_seconds``) and non-floats as they are."""
    if not isinstance(value, float) or name.endswith("_seconds"):
        return f"{value}"
    coco = name.rpartition("/")[2].startswith(("AP", "AR"))
    return f"{100 * value:.1f}%" if percent and not coco else f"{value:.4f}"
