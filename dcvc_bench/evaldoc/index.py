"""The evaluation history of a run folder (``eval/index.json``): every `dcvc-bench eval`
that wrote there, oldest first, rewritten atomically after each eval's own files and
rebuilt from the documents on disk when missing. Torch-free: the TUI reads the same file
(:func:`dcvc_bench.evaldoc.views.read_eval_history`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from dcvc_bench.checkpoints import atomic_write_json
from dcvc_bench.evaldoc.schema import EVAL_KIND, INDEX_KIND, EvalDocument, eval_index, index_entry, is_eval_document_name

__all__ = ["update_index"]


def _index_entries(folder: Path) -> Optional[list]:
    """The entries of ``folder/index.json``, or None when it is missing or unreadable."""
    try:
        data = json.loads((folder / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != INDEX_KIND or not isinstance(data.get("evals"), list):
        return None
    return [e for e in data["evals"] if isinstance(e, dict) and isinstance(e.get("file"), str)]


def _entries_from_documents(folder: Path) -> list:
    """Index entries for the eval documents already in ``folder`` (a folder from before the
    index, or one whose index was lost), oldest first (by the time each records, else by name)."""
    entries = []
    for path in folder.glob("*.json"):
        if not is_eval_document_name(path.name):
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != EVAL_KIND:
                continue
            rd_file = path.with_name(path.stem + "-rd.json")
            stamp = doc.get("created_unix")
            entry = index_entry(doc, path.name, rd_file.name if rd_file.is_file() else None)
            entries.append((stamp if isinstance(stamp, (int, float)) else 0.0, path.name, entry))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not an eval document this version can read: left out of the index, left on disk
    return [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]


def update_index(folder: Path, doc: EvalDocument, file: str, rd_file: Optional[str]) -> Path:
    """Add the document just written as ``folder/file`` to ``folder/index.json`` (rewritten
    atomically; rebuilt from the documents on disk when missing or unreadable)."""
    entries = _index_entries(folder)
    if entries is None:
        entries = _entries_from_documents(folder)
    entries = [e for e in entries if e.get("file") != file]
    entries.append(index_entry(doc, file, rd_file))
    path = folder / "index.json"
    atomic_write_json(path, eval_index(entries))
    return path
