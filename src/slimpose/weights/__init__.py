"""Weights this project trained with its own code, shipped inside the package.

Each weight is an ONNX export (what the torch-free runtime loads), an optional fp16
torch checkpoint beside it (to evaluate it with ``slimpose eval`` or to continue its
training), and a JSON manifest saying how it was made and what it scores:

    src/slimpose/weights/lpn_50_lsp_192x144.onnx
    src/slimpose/weights/lpn_50_lsp_192x144.pth
    src/slimpose/weights/lpn_50_lsp_192x144.json

Torch-free: listing and resolving names needs only the standard library. Resolving a
name checks the file against its manifest's SHA-256 (once per process and file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from slimpose.errors import SlimposeError
from slimpose.io import file_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent
MANIFEST_FIELDS = ("name", "file", "model", "input_size", "layout", "decode", "sha256")
# A manifest's headline figure: one of these, on its val_set (PCK in percent, AP as COCO's fraction).
HEADLINE_FIELDS = ("val_pck", "val_ap")


class WeightsError(SlimposeError):
    """An unknown weight name or a shipped file that does not match its manifest."""


# Files whose hash matched this process, as (path, size, mtime_ns, sha256): hashing the
# 12 MB files again on every resolution would cost more than the check is worth, and a
# file rewritten since (new size or mtime) is hashed again.
_VERIFIED: set[tuple[str, int, int, str]] = set()


def _verify_file(path: Path, sha256: str, name: str) -> None:
    """Raise WeightsError when ``path`` is missing or its SHA-256 is not ``sha256``."""
    if not path.is_file():
        raise WeightsError(f"{path}: shipped weight {name!r} is missing from the installation")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, sha256)
    if key in _VERIFIED:
        return
    if file_sha256(path) != sha256:
        raise WeightsError(f"{path}: sha256 differs from its manifest (shipped weight {name!r}): the file is "
                           f"damaged; reinstall slimpose")
    _VERIFIED.add(key)


@dataclass(frozen=True)
class ShippedWeight:
    """One shipped weight, as its manifest describes it."""

    name: str
    path: Path  # the ONNX file
    model: str
    input_size: tuple[int, int]
    layout: str
    decode: str
    sha256: str
    val_pck: float | None = None  # LSP weights: PCK@0.2 (%) on LSPET im08001-im09000, 14 joints, flip test
    val_ap: float | None = None  # COCO weights: OKS AP on the manifest's val_set with ground-truth boxes
    checkpoint: Path | None = None
    checkpoint_sha256: str | None = None
    manifest: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_manifest(cls, path: str | Path) -> "ShippedWeight":
        path = Path(path)
        try:
            m = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise WeightsError(f"{path}: unreadable weight manifest ({e})") from None
        missing = [k for k in MANIFEST_FIELDS if k not in m]
        if missing:
            raise WeightsError(f"{path}: manifest lacks {', '.join(missing)}")
        if not any(isinstance(m.get(k), (int, float)) for k in HEADLINE_FIELDS):
            raise WeightsError(f"{path}: manifest lacks its figure ({' or '.join(HEADLINE_FIELDS)})")
        ckpt = m.get("checkpoint")
        return cls(name=m["name"], path=path.parent / m["file"], model=m["model"],
                   input_size=(int(m["input_size"][0]), int(m["input_size"][1])), layout=m["layout"],
                   decode=m["decode"], sha256=m["sha256"],
                   val_pck=float(m["val_pck"]) if "val_pck" in m else None,
                   val_ap=float(m["val_ap"]) if "val_ap" in m else None,
                   checkpoint=path.parent / ckpt if ckpt else None,
                   checkpoint_sha256=m.get("checkpoint_sha256") if ckpt else None, manifest=m)

    def headline(self) -> str:
        """Its figure as ``slimpose weights`` prints it: ``val PCK@0.2 65.4`` or ``val AP 0.352``."""
        if self.val_pck is not None:
            return f"val PCK@0.2 {self.val_pck:5.1f}"
        return f"val AP {self.val_ap:.3f}"

    def summary(self) -> dict:
        """The manifest with the files' absolute paths (what ``slimpose weights --json`` writes)."""
        return {**self.manifest, "path": str(self.path),
                "checkpoint": str(self.checkpoint) if self.checkpoint else None}

    def verify(self) -> None:
        """Raise WeightsError when the ONNX file is missing or differs from the manifest."""
        _verify_file(self.path, self.sha256, self.name)

    def verify_checkpoint(self) -> None:
        """Raise WeightsError when the torch checkpoint is missing or differs from the manifest."""
        if self.checkpoint is None:
            raise WeightsError(f"shipped weight {self.name!r} has no torch checkpoint; see its manifest "
                               f"({self.manifest.get('reproduce', 'command')}) to reproduce it")
        if not self.checkpoint_sha256:  # a checkpoint that cannot be checked is not used
            raise WeightsError(f"shipped weight {self.name!r}: its manifest lacks checkpoint_sha256")
        _verify_file(self.checkpoint, self.checkpoint_sha256, self.name)


def list_weights(directory: str | Path | None = None) -> list[ShippedWeight]:
    """The weights in ``directory`` (default: the package's own)."""
    folder = Path(directory) if directory is not None else WEIGHTS_DIR
    return [ShippedWeight.from_manifest(p) for p in sorted(folder.glob("*.json"))]


def get_weight(name: str, directory: str | Path | None = None) -> ShippedWeight:
    weights = {w.name: w for w in list_weights(directory)}
    if name not in weights:
        known = ", ".join(sorted(weights)) or "none"
        raise WeightsError(f"no shipped weight named {name!r}; shipped: {known} (see 'slimpose weights')")
    return weights[name]


def resolve_model_file(name_or_path: str | Path, directory: str | Path | None = None) -> Path:
    """An ONNX path as given, or the ONNX file of a shipped weight name, checked
    against its manifest's sha256."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix or len(path.parts) > 1:  # it was meant as a file
        known = ", ".join(w.name for w in list_weights(directory)) or "none"
        raise WeightsError(f"{path}: model file not found (shipped weight names: {known})")
    weight = get_weight(str(name_or_path), directory)
    weight.verify()
    return weight.path


def resolve_checkpoint(name_or_path: str | Path, directory: str | Path | None = None) -> Path:
    """A checkpoint path as given, or the torch checkpoint shipped with a weight name,
    checked against its manifest's checkpoint_sha256."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix or len(path.parts) > 1:
        return path
    weight = get_weight(str(name_or_path), directory)
    weight.verify_checkpoint()
    return weight.checkpoint
