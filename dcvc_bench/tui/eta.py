"""Durations and ETAs from a step's events: seconds per iteration and per epoch of the
current attempt, and the time a step has spent training over all its attempts."""

from __future__ import annotations

from typing import Any

from dcvc_bench.evaldoc import as_float, as_int


def seconds_per_iter(first: dict[str, Any] | None, last: dict[str, Any] | None) -> float | None:
    if first is None or last is None or first is last:
        return None
    ipe = as_int(last.get("iters_per_epoch")) or 1
    done = [(as_int(e.get("epoch")) or 0) * ipe + (as_int(e.get("iter")) or 0) for e in (first, last)]
    seconds = (as_float(last.get("t")) or 0) - (as_float(first.get("t")) or 0)
    return seconds / (done[1] - done[0]) if done[1] > done[0] and seconds > 0 else None


def epoch_seconds(starts: list[dict[str, Any]], latest: list[dict[str, Any]]) -> float | None:
    """Seconds per epoch of the current attempt so far (evaluation included)."""
    if not starts or not latest:
        return None
    begun = starts[-1]
    done = [c for c in latest if (as_float(c.get("t")) or 0) > (as_float(begun.get("t")) or 0)]
    if not done:
        return None
    epochs = (as_int(done[-1].get("epoch")) or 0) - (as_int(begun.get("start_epoch")) or 0)
    seconds = (as_float(done[-1].get("t")) or 0) - (as_float(begun.get("t")) or 0)
    return seconds / epochs if epochs > 0 and seconds > 0 else None


def took(starts: list[dict[str, Any]], ends: list[dict[str, Any]], now: float | None) -> float | None:
    """Time from each step_start to the step_end after it (to ``now`` for a live attempt)."""
    total, any_ = 0.0, False
    for begun in starts:
        t0 = as_float(begun.get("t")) or 0
        end = next((as_float(e.get("t")) for e in ends if (as_float(e.get("t")) or 0) >= t0), None)
        if end is None and begun is starts[-1]:
            end = now
        if end is not None:
            total, any_ = total + max(end - t0, 0), True
    return total if any_ else None


def makespan(first: float, tracks: list[float], slots: int) -> float:
    """How long work takes that runs ``first`` (the I-frame steps, one after another),
    then ``tracks`` (each track's steps in order) on ``slots`` parallel runners: the
    runner's own order (a free runner takes the next track), so the tracks are laid
    out in order onto the runner that frees first."""
    ends = [0.0] * max(1, slots)
    for seconds in tracks:
        i = ends.index(min(ends))
        ends[i] += seconds
    return first + max(ends)
