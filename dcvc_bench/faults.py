"""Crash injection for the kill-anywhere test. Off unless ``DCVC_BENCH_FAULT`` is set.

``DCVC_BENCH_FAULT="<action>@<point>"`` makes the first process that reaches a named
point matching ``<point>`` (a shell-style pattern) SIGKILL part of the run's process tree
there, once. The runner's children inherit the variable, so one spec reaches the
trainer's points too. Actions:

- ``kill-tree``: the runner and every step it runs (the trainer, accelerate), at once;
- ``kill-runner``: only the runner (its trainer trains on, an orphan);
- ``kill-trainer``: only the trainer, at a point it reaches itself (the runner sees its
  step crash and retries it).

Points (``fault(...)`` calls): in the runner ``event:<kind>`` (``event:checkpoint:<kind>``
for checkpoints) just after it has handled a trainer event, ``launched`` (step started,
its pid not yet in the ledger), ``archive:before``, ``archive:linked`` (``final.pth`` in
place, its sidecar not written), ``ledger:before-done``, ``ledger:after-done``; in every
sidecar write ``sidecar:<file name>`` (the ``.pth`` replaced, its sidecar not yet).
"""

from __future__ import annotations

import fnmatch
import os
import signal
from typing import Callable, Iterable

ENV = "DCVC_BENCH_FAULT"
#: Set by the runner in each step's environment (also what a trainer watches).
RUNNER_PID_ENV = "DCVC_BENCH_RUNNER_PID"
ACTIONS = ("kill-tree", "kill-runner", "kill-trainer")

_fired = False


def fault(point: str, step_groups: Iterable[int] = ()) -> None:
    """Fire the configured fault if ``point`` matches it. ``step_groups``: the process
    groups of the steps this runner is running (empty in the trainer)."""
    global _fired
    spec = os.environ.get(ENV)
    if not spec or _fired or "@" not in spec:
        return
    action, pattern = spec.split("@", 1)
    runner = int(os.environ.get(RUNNER_PID_ENV) or os.getpid())
    in_runner = runner == os.getpid()
    if action not in ACTIONS or (action == "kill-trainer" and in_runner) \
            or not fnmatch.fnmatchcase(point, pattern):
        return
    _fired = True
    if in_runner:
        if action == "kill-tree":
            for group in step_groups:
                _kill(group, os.killpg)
        _kill(os.getpid())
    elif action == "kill-trainer":
        _kill(os.getpid())
    else:
        _kill(runner)
        if action == "kill-tree":
            _kill(os.getpgrp(), os.killpg)  # accelerate launch, the trainer, its workers


def _kill(pid: int, how: Callable[[int, int], None] = os.kill) -> None:
    try:
        how(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
