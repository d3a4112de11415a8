"""What every `dcvc-bench bench` command prints and saves about its runs: median and min
over several timed runs, the thread count, the machine's load, a JSON record, and the
ratio against a saved record (``--compare-to``). Standard library only (no torch): the
compute-plane benches pass their figures in.

A record (``--json FILE``, written atomically)::

    {"format": "dcvc-bench-bench", "version": 1, "bench": "train" | "infer" | ...,
     "config": {...what was measured: preset, crop, batch, ...},
     "path": "plain" | "channels_last" | "channels_last+fused" | ...,   # which code path ran
     "unit": "ms/P-frame",              # what each entry of "runs" is; lower is faster
     "runs": [..], "median": .., "min": ..,
     "threads": 2, "cores": 2, "load": [1-min, 5-min, 15-min] at the start and end,
     "created": "2026-12-01T17:30:00+0000", "torch": "2.13.0"}

``--compare-to`` prints ``saved median / this median`` (above 1: this run is faster)
and names any config field that differs, so two records of different shapes are never
compared silently.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Optional

from dcvc_bench.errors import UserError

FORMAT = "dcvc-bench-bench"
VERSION = 1

__all__ = ["FORMAT", "compare_line", "load_record", "machine_load", "make_record", "summary_lines",
           "write_record"]


def machine_load() -> Optional[list[float]]:
    """The 1-, 5- and 15-minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def make_record(*, bench: str, config: dict[str, Any], path: str, unit: str, runs: list[float],
                threads: int, load_start: Optional[list[float]], torch_version: str = "",
                extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    if not runs:
        raise ValueError("a record needs at least one run")
    record = {
        "format": FORMAT, "version": VERSION, "bench": bench, "config": config, "path": path,
        "unit": unit, "runs": [round(r, 4) for r in runs],
        "median": round(statistics.median(runs), 4), "min": round(min(runs), 4),
        "threads": threads, "cores": os.cpu_count(),
        "load": {"start": load_start, "end": machine_load()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch_version,
    }
    record.update(extra or {})
    return record


def summary_lines(record: dict[str, Any]) -> list[str]:
    """Median and min over the runs, the threads and the load, as printed."""
    load = record["load"]
    fmt = (lambda v: "n/a" if v is None else "/".join(f"{x:.1f}" for x in v))
    runs = ", ".join(f"{r:.1f}" for r in record["runs"])
    return [f"{record['path']} path: median {record['median']:.1f} {record['unit']}, min {record['min']:.1f} "
            f"over {len(record['runs'])} runs ({runs})",
            f"torch threads {record['threads']} on {record['cores']} cores; load average (1/5/15 min) "
            f"{fmt(load['start'])} at the start, {fmt(load['end'])} at the end"]


def write_record(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    from dcvc_bench.checkpoints import atomic_file

    with atomic_file(path) as f:
        f.write((json.dumps(record, indent=1) + "\n").encode())


def load_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved record, or a one-line UserError naming the file."""
    p = Path(path)
    try:
        record = json.loads(p.read_text())
    except FileNotFoundError:
        raise UserError(f"--compare-to {p}: no such file; write one with --json FILE") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--compare-to {p}: not a readable JSON file ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("median"), (int, float)):
        raise UserError(f"--compare-to {p}: not a dcvc-bench bench record (written by a bench command's --json)")
    return record


def compare_line(record: dict[str, Any], saved: dict[str, Any], saved_path: str) -> str:
    """This run against a saved record: saved median / this median (above 1: faster)."""
    if saved.get("bench") != record["bench"] or saved.get("unit") != record["unit"]:
        raise UserError(f"--compare-to {saved_path}: a `bench {saved.get('bench')}` record "
                        f"({saved.get('unit')}); this is `bench {record['bench']}` ({record['unit']})")
    ratio = saved["median"] / record["median"]
    diff = sorted(k for k in set(record["config"]) | set(saved.get("config", {}))
                  if record["config"].get(k) != saved.get("config", {}).get(k))
    note = f"; NOTE config differs in {', '.join(diff)}" if diff else ""
    load = (saved.get("load") or {}).get("start")
    return (f"vs {saved_path} ({saved.get('path')} path, median {saved['median']:.1f} {saved['unit']}, "
            f"load {load[0] if load else 'n/a'}): {ratio:.2f}x ({'faster' if ratio >= 1 else 'slower'}){note}")


def finish(record: dict[str, Any], *, json_path: Optional[str], compare_to: Optional[str],
           echo: Callable[[str], None]) -> dict[str, Any]:
    """Print the summary, write ``--json`` and print the ``--compare-to`` ratio."""
    for line in summary_lines(record):
        echo(line)
    if compare_to:
        saved = load_record(compare_to)
        line = compare_line(record, saved, compare_to)
        record["compared_to"] = {"file": str(compare_to), "median": saved["median"],
                                 "ratio": round(saved["median"] / record["median"], 4)}
        echo(line)
    if json_path:
        write_record(json_path, record)
        echo(f"record written to {json_path}")
    return record
