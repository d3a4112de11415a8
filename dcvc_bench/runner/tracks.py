"""Which tracks run first, and how several run at once.

A track is a rate point's chain of steps, run in order. The tracks whose products other
tracks read (the I-frame steps that P-frame tracks take their I-frame codec from) run
first, one after another; the others then share the slots: one worker thread per slot (a
GPU of ``--gpus``, or a Slurm job in flight under ``[launcher.slurm] max_parallel``), each
taking the next waiting track when its own ends. The runner (:mod:`~dcvc_bench.runner.run`)
owns what a step is; this module only orders and spreads tracks.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence, TypeVar

from dcvc_bench.curriculum import Step
from dcvc_bench.runner.display import Display
from dcvc_bench.runner.launcher import StopRequest

Slot = TypeVar("Slot")
Result = TypeVar("Result")


def feeding_tracks(steps: Sequence[Step]) -> tuple[dict[str, list[Step]], list[str], list[str]]:
    """The steps by track (in curriculum order), the tracks whose products another track
    reads, and the rest."""
    tracks: dict[str, list[Step]] = {}
    for step in steps:
        tracks.setdefault(step.track, []).append(step)
    read = {(a, s.track) for s in steps for a in s.inputs}
    feeds = [t for t, track in tracks.items() if any(s.produces == a and t != reader for s in track
                                                     for a, reader in read)]
    return tracks, feeds, [t for t in tracks if t not in feeds]


def run_in_slots(queue: Sequence[list[Step]], slots: Sequence[Slot],
                 run_track: Callable[[list[Step], Slot], list[Result]],
                 stop: StopRequest, display: Display) -> list[Result]:
    """Run the tracks of ``queue`` in worker threads, one per slot, the main thread waiting
    and announcing Ctrl-C's stop requests (signal handlers only set flags: printing from a
    handler can deadlock on the output's lock). An exception in a worker stops the others
    at their next step and is re-raised here."""
    if not queue:
        return []
    waiting = list(queue)
    queue_lock = threading.Lock()
    results: list[Result] = []
    errors: list[BaseException] = []

    def worker(slot: Slot) -> None:
        try:
            while not stop.graceful.is_set():
                with queue_lock:
                    if not waiting:
                        return
                    track = waiting.pop(0)
                results.extend(run_track(track, slot))
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)
            stop.graceful.set()

    threads = [threading.Thread(target=worker, args=(slot,), name=f"track-{i}-gpu{slot}", daemon=True)
               for i, slot in enumerate(list(slots)[:len(waiting)])]
    for thread in threads:
        thread.start()
    announced = {"graceful": False, "kill": False}
    while any(t.is_alive() for t in threads):
        time.sleep(0.1)
        if stop.graceful.is_set() and not announced["graceful"] and not errors:
            announced["graceful"] = True
            display.message("stopping: the running step saves its latest checkpoint and exits "
                            "(Ctrl-C again to kill it now)")
        if stop.kill.is_set() and not announced["kill"]:
            announced["kill"] = True
            display.message("killing the running step now")
    if errors:
        raise errors[0]
    return results
