"""Timings that say what they measured: wall time with the process's CPU time beside it
(its own threads and its finished children, e.g. ffmpeg), and a note when the machine is
loaded (1-minute load average above its core count), because wall-clock coding times
then swing with other processes' work. Standard library only."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

__all__ = ["Stopwatch", "load_note"]


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass
class Stopwatch:
    """Started when made; :meth:`read` gives (wall seconds, CPU seconds) since then."""

    wall0: float = 0.0
    cpu0: float = 0.0

    def __post_init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), _cpu_seconds()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall0, _cpu_seconds() - self.cpu0

    def describe(self) -> str:
        wall, cpu = self.read()
        return f"{wall:.1f} s wall, {cpu:.1f} s CPU"


def load_note(load: Optional[float] = None, cores: Optional[int] = None) -> Optional[str]:
    """A line saying the machine is loaded, or None (also where there is no load average)."""
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):
            return None
    cores = cores or os.cpu_count() or 1
    if load <= cores:
        return None
    return (f"the machine is loaded (1-min load average {load:.1f} on {cores} cores): wall-clock times "
            "include waiting for other processes; the CPU time is this process's own")
