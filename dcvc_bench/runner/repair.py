"""Put a run folder back in order after a kill, before anything is decided from it.

`run` calls :func:`repair_run_folder` under the folder's lock once no trainer of the run
is alive (orphans are stopped first), and :func:`repair_track` after each attempt of a
step, for that track (its trainer is gone then). What a kill can leave, and what is done:

- temp files of atomic writes cut short (``.<name>.<8 chars>.tmp``, the names
  :func:`~dcvc_bench.checkpoints.atomic_file` gives): removed;
- a stage checkpoint whose sidecar is missing or describes the file's previous version (a
  kill between the ``.pth`` replace and the sidecar write): its sidecar is rebuilt from
  the ``.pth`` (:func:`~dcvc_bench.checkpoints.rebuild_sidecars`: torch in a child
  process, only when something needs it, so the runner never imports torch); a file that
  cannot be loaded is left alone, said, and not used;
- a sidecar from before sidecars recorded a sha256: given one (trusting size and mtime
  this once, as the version that wrote it did).

Archives (``steps/<id>/final.pth``) are never rebuilt from their content: an archive
stands for "this step finished with this config", which only the runner can say. A
missing or mismatched one is archived again from the step's own ``final`` while that is
still there (:mod:`~dcvc_bench.runner.resume`), else the step runs again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from dcvc_bench.checkpoints import read_meta, rebuild_sidecars, remove_stray_temps, write_sidecar
from dcvc_bench.curriculum import RunPaths


def repair_run_folder(paths: RunPaths) -> list[str]:
    """Repair the whole run folder; returns what was done, one line each."""
    run_dir = paths.run_dir
    step_dirs = _subfolders(run_dir / "steps")
    track_dirs = _subfolders(run_dir / "checkpoints")
    messages = _remove_temps([run_dir, *step_dirs, *track_dirs])
    messages += _repair_sidecars([p for d in track_dirs for p in sorted(d.glob("*.pth"))],
                                 [d / "final.pth" for d in step_dirs if (d / "final.pth").is_file()])
    return messages


def repair_track(paths: RunPaths, track: str, step_id: str) -> list[str]:
    """After an attempt of ``step_id``: its track's checkpoints and its step folder."""
    folder = paths.checkpoints_dir(track)
    messages = _remove_temps([folder, paths.step_dir(step_id)])
    return messages + _repair_sidecars(sorted(folder.glob("*.pth")), [])


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir())
    except OSError:
        return []


def _remove_temps(folders: Iterable[Path]) -> list[str]:
    removed = [p for folder in folders for p in remove_stray_temps(folder)]
    if not removed:
        return []
    names = ", ".join(str(p) for p in removed[:3]) + (f" (+{len(removed) - 3} more)" if len(removed) > 3 else "")
    return [f"removed {len(removed)} temp file(s) of writes cut short by a kill: {names}"]


#: Versions of files this process failed to load: not tried again (each try starts torch).
_UNLOADABLE: set[tuple[str, int, int, int]] = set()


def _repair_sidecars(checkpoints: list[Path], archives: list[Path]) -> list[str]:
    """Rebuild stale sidecars of ``checkpoints``; give every sidecar without a sha256 one."""
    stale: dict[Path, tuple[str, int, int, int]] = {}
    for pth in [*checkpoints, *archives]:
        meta = read_meta(pth)
        if meta is None:
            key = _version(pth)
            if pth in checkpoints and key is not None and key not in _UNLOADABLE:
                stale[pth] = key
        elif "sha256" not in meta:
            write_sidecar(pth, meta)
    messages = []
    for pth, why in rebuild_sidecars(list(stale)).items():
        if why is None:
            messages.append(f"{pth}: sidecar rebuilt from the checkpoint (its writer was killed in between)")
        else:
            _UNLOADABLE.add(stale[pth])
            messages.append(f"warning: {pth} does not match its sidecar and cannot be loaded ({why}); "
                            "it is not used")
    return messages


def _version(path: Path) -> tuple[str, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_ino, st.st_size, st.st_mtime_ns
