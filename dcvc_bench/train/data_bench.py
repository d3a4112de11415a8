"""`dcvc-bench bench data`: what the training loader delivers, per number of workers.

The real parts: :class:`~dcvc_bench.data.video.VideoGOPDataset` over MP4 clips (720p
synthetic clips written with :func:`~dcvc_bench.data.synth.write_synthetic_clips` unless
a folder is given) and a torch ``DataLoader`` built as the trainer builds it
(:func:`~dcvc_bench.train.recipe.make_loader`: batch, ``drop_last``, ``prefetch_factor``;
no pinning, no device). For each worker count it iterates one epoch of ``batches``
batches and reports:

- ``frames_per_s``: frames of GOP crops delivered per second after the first batch
  (steady state; worker start-up is ``startup_s``);
- ``build_s``: building the dataset (probing; with the frame cache, decoding every clip
  once when its entry is missing);
- ``rss_mib_*``: resident memory of this process plus its worker processes, sampled
  every few batches (psutil when installed, else ``/proc/<pid>/statm``). Workers share
  pages copy-on-write, so the sum over-counts; its *growth* over the epoch
  (``rss_growth_mib``, from the end of the first tenth of the epoch to its end) is what
  says whether memory is flat.

Figures are printed, never asserted; the machine's load is printed with them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

#: The training crops' source size when no folder is given: 720p, as the issue measures.
DEFAULT_CLIP_SIZE = (1280, 720)


def memory_mib() -> float:
    """Resident memory (MiB) of this process and all its children."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is installed in the project's venv
        return sum(_statm_rss(pid) for pid in (os.getpid(), *_children(os.getpid()))) / 2**20
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _statm_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    out += [int(child), *_children(int(child))]
    except OSError:
        pass
    return out


def load_figure() -> str:
    """``load 1/5/15 min a, b, c on N cores`` (the context every figure is printed with)."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f} on {os.cpu_count()} cores"


def measure_loader(folder: str | os.PathLike[str], *, workers: int, gop: int, crop: int, batch: int,
                   batches: int, seed: int = 0, frame_cache: Optional[str] = None) -> dict[str, Any]:
    """One epoch of ``batches`` batches through a trainer-shaped DataLoader (module docstring)."""
    from torch.utils.data import DataLoader

    from dcvc_bench.data.video import VideoGOPDataset
    from dcvc_bench.train.recipe import PREFETCH_FACTOR

    options = {"frame_cache": frame_cache} if frame_cache else {}
    t_build = time.perf_counter()
    dataset = VideoGOPDataset(folder, gop, crop, samples_per_epoch=batch * batches, seed=seed, **options)
    build_s = time.perf_counter() - t_build  # probing the clips; with frame_cache, decoding them once
    loader = DataLoader(dataset, batch_size=batch, shuffle=False, drop_last=True, num_workers=workers,
                        persistent_workers=False, prefetch_factor=PREFETCH_FACTOR if workers > 0 else None)
    every = max(1, batches // 20)
    samples: list[float] = []
    t0 = time.perf_counter()
    t_first = t0
    count = 0
    for i, frames in enumerate(loader):
        if i == 0:
            t_first = time.perf_counter()
        if i % every == 0 or i == batches - 1:
            samples.append(memory_mib())
        count += 1
        del frames
    t_end = time.perf_counter()
    timed = max(count - 1, 1)
    steady = max(t_end - t_first, 1e-9)
    tenth = samples[max(1, len(samples) // 10)] if len(samples) > 1 else samples[0]
    return {"workers": workers, "batches": count, "gop": gop, "crop": crop, "batch": batch,
            "frames_per_s": timed * batch * gop / steady, "gops_per_s": timed * batch / steady,
            "startup_s": t_first - t0, "epoch_s": t_end - t0, "build_s": build_s,
            "rss_mib_start": samples[0], "rss_mib_max": max(samples), "rss_mib_end": samples[-1],
            "rss_growth_mib": samples[-1] - tenth, "frame_cache": bool(frame_cache)}


def synthetic_clips(folder: str | os.PathLike[str], *, clips: int, frames: int,
                    size: tuple[int, int] = DEFAULT_CLIP_SIZE) -> list[Path]:
    from dcvc_bench.data.synth import write_synthetic_clips

    return write_synthetic_clips(folder, videos=clips, frames=frames, size=size, seed=0)


def run_data_benchmark(*, folder: Optional[str], workers: Iterable[int], gop: int, crop: int, batch: int,
                       batches: int, clips: int = 4, frames: int = 60,
                       size: tuple[int, int] = DEFAULT_CLIP_SIZE, frame_cache: bool = False,
                       consumption: Optional[float] = None,
                       echo: Callable[[str], None] = print) -> dict[str, Any]:
    """``bench data``: one row per worker count (and, with ``frame_cache``, the same rows
    through the decoded-frame cache); ``consumption`` (frames/s the trainer takes) adds
    the margin column."""
    from dcvc_bench.errors import UserError

    workers = list(workers)
    if not workers or min(workers) < 0:
        raise UserError(f"--workers: whole numbers >= 0, got {workers}")
    if batches < 2:
        raise UserError(f"--batches: at least 2 (the first batch is start-up, not timed), got {batches}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="dcvc-bench-data-") as tmp:
        source = folder
        if source is None:
            source = os.path.join(tmp, "clips")
            synthetic_clips(source, clips=clips, frames=frames, size=size)
            what = f"{clips} synthetic {size[0]}x{size[1]} MP4s of {frames} frames"
        else:
            what = str(folder)
        echo(f"loader: GOP {gop} crops {crop}x{crop}, batch {batch}, {batches} batches per epoch, from {what}; "
             f"{load_figure()}")
        modes = [None, os.path.join(tmp, "frame-cache")] if frame_cache else [None]
        for cache in modes:
            for w in workers:
                row = measure_loader(source, workers=w, gop=gop, crop=crop, batch=batch, batches=batches,
                                     frame_cache=cache)
                rows.append(row)
                margin = f", {row['frames_per_s'] / consumption:.1f}x the trainer's {consumption:.1f} frames/s" \
                    if consumption else ""
                echo(f"  workers {w}{' (frame cache)' if cache else ''}: {row['frames_per_s']:.1f} frames/s "
                     f"({row['gops_per_s']:.1f} GOPs/s){margin}; start-up {row['startup_s']:.2f} s "
                     f"(dataset built in {row['build_s']:.1f} s); RSS "
                     f"{row['rss_mib_start']:.0f} -> max {row['rss_mib_max']:.0f} -> end {row['rss_mib_end']:.0f} MiB "
                     f"(growth {row['rss_growth_mib']:+.0f} MiB)")
    return {"kind": "data", "source": what, "load": load_figure(), "consumption_frames_per_s": consumption,
            "rows": rows}
