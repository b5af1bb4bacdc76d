"""Checkpoints: a state dict (``<name>.pt``) beside its JSON metadata (``<name>.json``).

The metadata holds the GRU config, feature version, decision thresholds, input normalisation,
the SHA-256 of the training files list, the split and the held-out metrics. Loading checks the
weights file against the SHA-256 recorded in the metadata, so a card never describes other weights.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.gru import GRUNet, build

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(Exception):
    """A checkpoint is missing, corrupt or does not match its metadata."""


@dataclass(frozen=True)
class Checkpoint:
    name: str
    model: GRUNet
    meta: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.meta["version"])


def save(name: str, model: GRUNet, meta: dict[str, Any], weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Write ``<name>.pt`` and ``<name>.json``; returns the JSON path."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    blob = buffer.getvalue()
    (weights_dir / f"{name}.pt").write_bytes(blob)
    sha = hashlib.sha256(blob).hexdigest()
    full = {**meta, "name": name, "config": model.config.to_dict(), "weights_sha256": sha}
    full.setdefault("version", f"{meta.get('version_prefix', '1')}-{sha[:8]}")
    path = weights_dir / f"{name}.json"
    path.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return path


def load_meta(name: str, weights_dir: Path | None = None) -> dict[str, Any]:
    path = (weights_dir or WEIGHTS_DIR) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def _verified_blob(name: str, suffix: str, meta: dict[str, Any], weights_dir: Path | None) -> bytes:
    """The bytes of ``<name>.<suffix>``, only if their SHA-256 is the one its metadata records."""
    path = (weights_dir or WEIGHTS_DIR) / f"{name}.{suffix}"
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{path} does not match the SHA-256 in {name}.json")
    return blob


def load(name: str, weights_dir: Path | None = None) -> Checkpoint:
    """The network in eval mode with its metadata; raises CheckpointError on any mismatch."""
    meta = load_meta(name, weights_dir)
    if meta.get("kind") == "trees":
        raise CheckpointError(f"{name} is a tree model: use load_estimator")
    blob = _verified_blob(name, "pt", meta, weights_dir)
    try:
        model = build(meta["config"])
        model.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"cannot build {name} from its checkpoint: {exc}") from exc
    return Checkpoint(name, model.eval(), meta)


def save_estimator(name: str, estimator: Any, meta: dict[str, Any], weights_dir: Path = WEIGHTS_DIR) -> Path:
    """A scikit-learn estimator as ``<name>.pkl`` beside its JSON metadata (``kind`` = "trees")."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
    (weights_dir / f"{name}.pkl").write_bytes(blob)
    sha = hashlib.sha256(blob).hexdigest()
    full = {**meta, "name": name, "kind": "trees", "weights_sha256": sha}
    full.setdefault("version", f"{meta.get('version_prefix', '1')}-{sha[:8]}")
    path = weights_dir / f"{name}.json"
    path.write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return path


def load_estimator(name: str, weights_dir: Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Unpickles only after the file's SHA-256 matches the metadata: only the shipped file is trusted."""
    meta = load_meta(name, weights_dir)
    blob = _verified_blob(name, "pkl", meta, weights_dir)
    return pickle.loads(blob), meta  # noqa: S301 - hash-checked file shipped with the package
