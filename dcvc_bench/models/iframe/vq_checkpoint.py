"""The VQ checkpoint: the one format a VQGAN / RVQ-VQGAN codec is stored in, its writer,
its weights-only loader (every mismatch with the config one line naming the key) and the
index statistics its entropy coder is fitted on.

Checkpoint (``torch.save`` of plain data, loaded with ``weights_only=True``)::

    {"format": "dcvc-bench-vq", "format_version": 1,
     "config": <the JSON config, defaults filled in>, "state_dict": {...},
     "index_counts": int64 N×K (training-frame index histogram per layer),
     "cdfs": int32 N×(K+2) (the quantised CDFs fitted on those counts)}
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dcvc_bench.checkpoints import atomic_file
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.vq_config import VQConfig
from dcvc_bench.models.vq_coding import IndexTables, count_indices
from dcvc_bench.models.vqgan import VQGAN

CHECKPOINT_FORMAT = "dcvc-bench-vq"
CHECKPOINT_VERSION = 1
_KEYS = ("format", "format_version", "config", "state_dict", "index_counts")


def save_vq_checkpoint(path: str | os.PathLike[str], model: VQGAN, index_counts: np.ndarray,
                       tables: IndexTables | None = None) -> Path:
    """Atomically write a VQ checkpoint (the project's one writer). ``tables`` defaults to
    the tables fitted on ``index_counts``."""
    state = vq_checkpoint_state(model, index_counts, tables)
    path = Path(path)
    with atomic_file(path) as fh:
        torch.save(state, fh)
    return path


def vq_checkpoint_state(model: VQGAN, index_counts: np.ndarray, tables: IndexTables | None = None) -> dict[str, Any]:
    """The content of a VQ checkpoint (module docstring); the I-frame training step adds
    its training keys to it."""
    tables = tables if tables is not None else IndexTables(index_counts)
    return {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "index_counts": torch.from_numpy(np.asarray(index_counts, dtype=np.int64).copy()),
        "cdfs": torch.from_numpy(tables.cdfs.copy()),
    }


def is_vq_checkpoint(obj: Any) -> bool:
    """Whether a loaded object is a VQ checkpoint (lets other families refuse it by name)."""
    return isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT


def vq_checkpoint_family(obj: Any) -> str | None:
    """The family (``vqgan``/``rvq``) a loaded VQ checkpoint's config names, else None."""
    if not is_vq_checkpoint(obj):
        return None
    family = obj.get("config", {}).get("family") if isinstance(obj.get("config"), dict) else None
    return family if isinstance(family, str) else "vqgan/rvq"


def peek_vq_family(path: str | os.PathLike[str]) -> str | None:
    """The family of the VQ checkpoint at ``path`` (read as data, memory-mapped: the
    weights are not read), or None when it is not one or cannot be read. Never raises."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not a zip checkpoint, pickled code, unreadable: not a VQ checkpoint here
        return None
    return vq_checkpoint_family(state)


def load_vq_checkpoint(path: str | os.PathLike[str], config: VQConfig | None = None,
                       flag: str = "--vqgan_checkpoint") -> tuple[VQGAN, IndexTables]:
    """The network (eval mode, frozen) and its index tables. With ``config`` (the JSON the
    user names) the checkpoint must have been made with exactly that config; every
    mismatch is one line naming the key."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{flag}: VQ checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{flag}: {path} carries pickled objects that weights_only loading refuses "
                        f"({first[:160]}); a VQ checkpoint is plain data") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"{flag}: {path} is not a readable checkpoint ({type(exc).__name__}: {first[:120]}); "
                        "it may be truncated") from None
    if not is_vq_checkpoint(state):
        raise UserError(f"{flag}: {path} is not a dcvc-bench VQ checkpoint (no format '{CHECKPOINT_FORMAT}'); "
                        "a VQ codec needs the file its training wrote")
    missing = [k for k in _KEYS if k not in state]
    if missing:
        raise UserError(f"{flag}: {path} lacks {', '.join(missing)}; it is damaged or from an unfinished write")
    if state["format_version"] != CHECKPOINT_VERSION:
        raise UserError(f"{flag}: {path} is VQ checkpoint version {state['format_version']}; "
                        f"this build reads version {CHECKPOINT_VERSION}")
    saved = VQConfig.from_dict(state["config"], where=f"{flag} {path} (its stored config)")
    if config is not None and config != saved:
        key, a, b = _first_difference(saved.to_dict(), config.to_dict())
        raise UserError(f"{flag}: {path} does not fit the config: {key!r} is {a} in the checkpoint, {b} in the "
                        "config; use the config it was trained with")
    model = VQGAN(saved)
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).strip().splitlines()[:2])[:300]
        raise UserError(f"{flag}: {path} weights do not fit its config ({saved.family}, f={saved.downsampling}, "
                        f"K={saved.codebook_size}): {detail}") from None
    if not model.codebooks_initialised():
        raise UserError(f"{flag}: {path} has codebooks that were never initialised (never trained); "
                        "train it before coding with it")
    counts, cdfs = state["index_counts"], state.get("cdfs")
    shape = (saved.num_quantizers, saved.codebook_size)
    if not isinstance(counts, Tensor) or tuple(counts.shape) != shape:
        got = tuple(counts.shape) if isinstance(counts, Tensor) else type(counts).__name__
        raise UserError(f"{flag}: {path} index_counts must be {shape[0]}×{shape[1]} (layers × K), got {got}")
    try:
        tables = IndexTables(counts.numpy(), None if cdfs is None else cdfs.numpy())
    except (ValueError, AttributeError) as exc:
        raise UserError(f"{flag}: {path} has unusable index tables: {exc}") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tables


def _first_difference(a: dict, b: dict, prefix: str = "") -> tuple[str, Any, Any]:
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found[0]:
                return found
        elif x != y:
            return f"{prefix}{key}", x, y
    return "", None, None


@torch.no_grad()
def fit_index_counts(model: VQGAN, frames: Iterable[Tensor], device: str | torch.device = "cpu") -> np.ndarray:
    """N×K index histogram of ``frames`` (batches B×3×H×W in [0, 1]) at full depth; the
    static CDF tables are fitted on it."""
    was = model.training
    model.eval()
    counts = np.zeros((model.depth, model.cfg.codebook_size), dtype=np.int64)
    try:
        for x in frames:
            idx = model.encode_indices(x.to(device, torch.float32), model.depth)
            counts += count_indices(idx, model.cfg.codebook_size, model.depth)
    finally:
        model.train(was)
    return counts


def refresh_index_tables(checkpoint: str | os.PathLike[str], frames: Iterable[Tensor]) -> IndexTables:
    """Re-fit a checkpoint's counts and CDFs on ``frames`` and rewrite it atomically."""
    model, _ = load_vq_checkpoint(checkpoint)
    counts = fit_index_counts(model, frames)
    tables = IndexTables(counts)
    save_vq_checkpoint(checkpoint, model, counts, tables)
    return tables
