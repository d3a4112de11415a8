"""Bring DCVC models trained elsewhere in: ``dcvc-bench import-checkpoint --from SOURCE IN OUT``.

One module per source layout (:mod:`.opendcvcs`, :mod:`.dcvc_official`) turns a foreign
state dict into dcvc-bench's (:class:`~.common.Conversion`: the weights, the DCVC options
such as a Laplace entropy model, what was changed and what cannot be kept). Here the result
is checked by loading it strictly into a full-size DCVC, then written by the one checkpoint
writer (:func:`~dcvc_bench.checkpoint_io.save_checkpoint`, with its sidecar) as a
dcvc-bench checkpoint that ``eval``, ``encode`` and ``decode`` take: ``model_preset`` dcvc,
``model_options`` for the entropy models, and the I-frame codec to pair it with (neither
source layout stores one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dcvc_bench.checkpoint_io import load_plain, save_checkpoint
from dcvc_bench.curriculum.iframe_spec import IFrameSpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.imports import dcvc_official, opendcvcs
from dcvc_bench.models.imports.common import check_layout, reference_model, strip_prefixes

__all__ = ["SOURCES", "ImportReport", "import_checkpoint"]

SOURCES = {opendcvcs.NAME: opendcvcs, dcvc_official.NAME: dcvc_official}


@dataclass
class ImportReport:
    path: Path
    options: dict
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _source_weights(state: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], list[str]]:
    """(state dict, training metadata, dropped entries) of a training checkpoint or a bare state dict."""
    if isinstance(state, dict) and isinstance(state.get("model_state_dict"), dict):
        weights = state["model_state_dict"]
        meta = {k: state[k] for k in ("epoch", "loss", "best_loss", "global_best_loss", "stage",
                                      "quality_index", "lambda_value") if k in state}
        dropped = [k for k in ("optimizer_state_dict", "scheduler_state_dict", "ema_state_dict") if k in state]
        return weights, meta, dropped
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state, {}, []
    raise UserError(f"IN: {path} is neither a state dict nor a checkpoint with a model_state_dict")


def import_checkpoint(source: str, src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                      i_frame: IFrameSpec, lambda_value: float | None = None,
                      quality_index: int | None = None, force: bool = False) -> ImportReport:
    """Convert ``src`` (a ``source``-layout checkpoint) and write it to ``dst``."""
    if source not in SOURCES:
        raise UserError(f"--from: unknown source layout {source!r}; valid: {', '.join(SOURCES)}")
    layout = SOURCES[source]
    src, dst = Path(src), Path(dst)
    if dst.exists() and not force:
        raise UserError(f"OUT: {dst} exists; give another path or --force to replace it")
    if dst.resolve() == src.resolve():
        raise UserError(f"OUT: {dst} is the input file; give another path")
    weights, meta, dropped = _source_weights(load_plain(src, "IN"), src)
    weights, prefix_changes = strip_prefixes(dict(weights))
    options = dict(getattr(layout, "OPTIONS", {}))
    reference = reference_model(options).state_dict()
    conv = layout.convert(weights, reference)
    problem = check_layout(conv.weights, reference, layout.LABEL)
    if problem:
        raise UserError(f"IN: {src}: {problem}; is --from {source} the right layout?")
    net = reference_model(conv.options)
    try:
        net.load_state_dict(conv.weights, strict=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise UserError(f"IN: {src}: the converted weights do not load ({str(exc).splitlines()[0][:160]})") from None

    lam = lambda_value if lambda_value is not None else meta.get("lambda_value")
    quality = quality_index if quality_index is not None else meta.get("quality_index")
    state = {
        "epoch": int(meta.get("epoch", 0)), "model_state_dict": net.state_dict(),
        "optimizer_state_dict": None, "loss": meta.get("loss"), "best_loss": meta.get("best_loss"),
        "global_best_loss": meta.get("global_best_loss"), "stage": int(meta.get("stage", 4)),
        "quality_index": quality, "lambda_value": float(lam) if lam is not None else None,
        "ema_state_dict": None, "scheduler_state_dict": None, "is_finetuning": False, "gop_size": None,
        "step_id": f"imported-{source}", "rng_state": None, "finished": True, "kind": "final",
        "model_preset": "dcvc", "model_options": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in conv.options.items()},
        "i_frame": i_frame.to_record(),
        "imported_from": {"source": source, "path": str(src)},
    }
    save_checkpoint(dst, state)
    changes = prefix_changes + conv.changes
    if dropped:
        changes.append(f"left out {', '.join(dropped)} (the source's training state: dcvc-bench's optimizer "
                       "and EMA formats differ; an OpenDCVCs *_best_ema.pth holds its EMA weights as model_state_dict)")
    changes.append(f"recorded the I-frame codec {i_frame.label} (the source stores none)")
    return ImportReport(path=dst, options=state["model_options"], changes=changes, notes=conv.notes,
                        dropped=dropped)
