"""The one checkpoint writer and loader (compute plane: needs torch), and the one reader
of a checkpoint's EMA weights.

Writes are atomic (temp file in the same folder, fsync, ``os.replace``) and followed by a
JSON sidecar (see :mod:`dcvc_bench.checkpoints`). A write that fails for a reason the user
must fix (disk full, quota, read-only or forbidden folder: :data:`~dcvc_bench.checkpoints.WRITE_ERRNOS`) raises
:class:`~dcvc_bench.checkpoints.WriteError`, one line naming the file; the old file stays as it was and no temp
file is left behind. Loads use ``weights_only=True``: a checkpoint is data, never code,
and one that carries a pickled callable is refused.
"""

from __future__ import annotations

import copy
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from dcvc_bench.checkpoints import atomic_file, write_sidecar
from dcvc_bench.curriculum.iframe_spec import IFrameSpec, spec_from_record
from dcvc_bench.errors import UserError

#: Keys of the seed protocol's checkpoints plus the ones dcvc-bench adds.
REQUIRED_KEYS = ("epoch", "model_state_dict", "optimizer_state_dict", "loss", "best_loss",
                 "global_best_loss", "stage", "quality_index", "lambda_value",
                 "ema_state_dict", "scheduler_state_dict", "is_finetuning", "gop_size",
                 "step_id", "rng_state")

#: Sidecar fields copied from the checkpoint (everything the control plane needs).
META_KEYS = ("epoch", "epochs", "loss", "best_loss", "global_best_loss", "stage", "gop_size",
             "step_id", "lambda_value", "quality_index", "finished", "kind", "lr",
             "model_preset", "i_frame")


#: The I-frame training step's checkpoints (``python -m dcvc_bench.train.iframe``): its
#: training keys; the codec's own keys come on top (a VQ checkpoint's ``format``,
#: ``config``, ``state_dict``, ``index_counts``, ``cdfs``; CompressAI's ``state_dict``,
#: ``model_name``, ``quality``). ``kind`` is ``"iframe"``; ``checkpoint_kind`` says
#: latest, best or final.
IFRAME_REQUIRED_KEYS = ("kind", "checkpoint_kind", "i_frame_type", "step_id", "epoch", "iteration",
                        "state_dict", "optimizer_state_dict", "loss", "best_loss", "rng")
IFRAME_META_KEYS = ("kind", "checkpoint_kind", "i_frame_type", "step_id", "epoch", "epochs", "iteration",
                    "loss", "best_loss", "finished", "lr", "perceptual", "rvq_train_layers",
                    "rvq_frozen_layers", "model_name", "quality", "lambda_value")
IFRAME_KIND = "iframe"


def is_iframe_checkpoint(state: Any) -> bool:
    return isinstance(state, dict) and state.get("kind") == IFRAME_KIND


def meta_fields(state: dict[str, Any]) -> dict[str, Any]:
    """The sidecar fields of a loaded checkpoint of either step kind."""
    keys = IFRAME_META_KEYS if is_iframe_checkpoint(state) else META_KEYS
    return {k: state.get(k) for k in keys}


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (a P-frame step's, or with ``kind: "iframe"`` an I-frame
    step's) to ``path`` and its sidecar. Returns the path."""
    required = IFRAME_REQUIRED_KEYS if is_iframe_checkpoint(state) else REQUIRED_KEYS
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"checkpoint state is missing {missing}")
    path = Path(path)
    with atomic_file(path) as fh:  # a write the OS refuses raises checkpoints.WriteError
        torch.save(state, fh)
    write_sidecar(path, meta_fields(state))
    return path


def load_checkpoint(path: str | os.PathLike[str], flag: str = "--resume") -> dict[str, Any]:
    """Load a P-frame step's checkpoint as data. Errors are one line naming the file."""
    return check_pframe(load_plain(path, flag), path, flag)


def check_pframe(state: Any, path: str | os.PathLike[str], flag: str) -> dict[str, Any]:
    if not isinstance(state, dict) or "model_state_dict" not in state:
        raise UserError(f"{flag}: {path} has no model_state_dict; it is not a dcvc-bench/DCVC checkpoint")
    return state


def load_iframe_checkpoint(path: str | os.PathLike[str], flag: str = "--resume") -> dict[str, Any]:
    """Load an I-frame training step's checkpoint as data (one line naming the file)."""
    state = load_plain(path, flag)
    if not is_iframe_checkpoint(state):
        raise UserError(f"{flag}: {path} is not a checkpoint of an I-frame training step (no kind "
                        f"'{IFRAME_KIND}'); give a file that python -m dcvc_bench.train.iframe wrote")
    return state


#: What ``torch.save`` writes: a zip whose one folder holds ``data.pkl`` (torch >= 1.6), or,
#: in the legacy format, a pickle stream that starts with torch's magic number (protocol 2).
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` is not a ``torch.save`` file at all (a TOML, a video, an empty file), or
    None when it looks like one; whether a torch file is readable is ``torch.load``'s to say."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(_LEGACY_MAGIC))
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head.startswith(_LEGACY_MAGIC):
        return None
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a torch file cut short: torch.load names the damage
        if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
            return None
        return "is a zip archive without data.pkl"
    return "is empty" if not head else "is neither a zip holding data.pkl nor a legacy torch pickle"


def load_plain(path: str | os.PathLike[str], flag: str) -> Any:
    """``torch.load(..., weights_only=True)`` with every failure as one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{flag}: checkpoint {path} does not exist")
    problem = not_a_checkpoint(path)
    if problem is not None:
        raise UserError(f"{flag}: {path} is not a checkpoint: it {problem} (torch.save writes one); "
                        "give a .pth that dcvc-bench's trainer wrote")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{flag}: {path} carries pickled objects that weights_only loading "
                        f"refuses ({first[:160]}); dcvc-bench never runs code from a "
                        "checkpoint — re-save it as plain tensors") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"{flag}: {path} is not a readable checkpoint "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}); "
                        "it may be truncated — use another one") from None
    return state


def iframe_spec_of(state: Mapping[str, Any], path: str | os.PathLike[str], flag: str = "--checkpoint") -> IFrameSpec:
    """The I-frame spec a checkpoint (or its sidecar metadata) records in ``i_frame``;
    records written before specs existed are converted. Errors are one line naming the file."""
    record = state.get("i_frame")
    if not isinstance(record, Mapping) or "type" not in record:
        raise UserError(f"{flag}: {path} does not record its I-frame codec ('i_frame'); "
                        "only checkpoints written by dcvc-bench's trainer can be used for coding")
    try:
        return spec_from_record(record)
    except UserError as exc:
        raise UserError(f"{flag}: {path}: its I-frame record is not valid: {exc}") from None


def model_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model's state dict, without a DDP/compile prefix if one slipped in."""
    weights = state["model_state_dict"]
    for prefix in ("module.", "_orig_mod."):
        if weights and all(k.startswith(prefix) for k in weights):
            weights = {k[len(prefix):]: v for k, v in weights.items()}
    return weights


def ema_fits(model: torch.nn.Module, ema_state: Any) -> bool:
    """Whether a saved EMA (``{"shadow": {name: tensor}, ...}``) belongs to ``model``:
    the same floating-point parameters with the same shapes."""
    shadow = ema_state.get("shadow") if isinstance(ema_state, dict) else None
    if not isinstance(shadow, dict) or not shadow:
        return False
    params = {n: p for n, p in model.named_parameters() if p.dtype.is_floating_point}
    return shadow.keys() == params.keys() and all(
        isinstance(shadow[n], torch.Tensor) and shadow[n].shape == p.shape for n, p in params.items())


def with_ema_weights(model: torch.nn.Module, shadow: dict[str, torch.Tensor]) -> torch.nn.Module:
    """A copy of ``model`` carrying the averaged weights (buffers copied as they are)."""
    averaged = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in averaged.named_parameters():
            if name in shadow:
                p.copy_(shadow[name])
    return averaged
