"""`dcvc-bench doctor`: is this machine ready for a run? One line per check, each with
what was found and, when something is missing, what to do.

Control plane: torch, OpenCV, accelerate and the compute-plane modules are imported only
inside the check functions, so a broken torch install is a "missing" line, not a crash.
The weight files are named by the code that loads them (no second copy of their paths):
LPIPS by :func:`dcvc_bench.eval.metrics.lpips_weight_files`, FID by
:func:`dcvc_bench.eval.fid.fid_available`, the CompressAI zoo by
:func:`dcvc_bench.models.iframe.compressai.zoo_weight_file`, SpyNet by the curriculum's
``[model].spynet_checkpoint`` (read by :func:`dcvc_bench.models.spynet.load_spynet_weights`),
ffmpeg and its encoders by :mod:`dcvc_bench.eval.baselines`.

A check is *required* when a training run cannot start without it (torch, OpenCV with
its video reader, accelerate, the curriculum's weight files, free disk); the others
(ffmpeg and x265/x264 for baselines, LPIPS, FID) are reported, and `eval` skips them or
says why. Exit code 0 when every required check passes, 1 otherwise.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from dcvc_bench.errors import UserError

MIN_FREE_GIB = 5.0  # a full curriculum's checkpoints and archives (a smoke run needs far less)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    found: str           # what is there (or what is not)
    fix: str = ""        # what to do when not ok
    required: bool = True

    def line(self, width: int) -> str:
        status = "ok" if self.ok else "missing"
        name = self.name if self.required else f"{self.name} (optional)"
        text = f"{status:<8} {name:<{width}} {self.found}"
        return f"{text} -> {self.fix}" if self.fix and not self.ok else text


# --------------------------------------------------------------------------- the machine


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - any import failure means "no usable torch"
        return Check("torch", False, f"not importable ({exc})",
                     "install a torch build for this machine: https://pytorch.org/get-started/locally/")
    build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        device = f"{torch.cuda.device_count()} CUDA device(s): {', '.join(names)}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "Apple MPS available"
    elif torch.version.cuda:
        device = "no CUDA device visible (driver? CUDA_VISIBLE_DEVICES?): runs use the CPU"
    else:
        device = "no GPU: CPU only (fine for smoke runs; install a CUDA build to train for real)"
    return Check("torch", True, f"{torch.__version__}, {build}; {device}")


def check_opencv() -> Check:
    try:
        import cv2
    except Exception as exc:  # noqa: BLE001
        return Check("OpenCV", False, f"not importable ({exc})", "pip install opencv-python-headless")
    info = cv2.getBuildInformation()
    ffmpeg_line = next((line for line in info.splitlines() if line.strip().startswith("FFMPEG:")), "")
    if ffmpeg_line and "YES" not in ffmpeg_line:
        return Check("OpenCV", False, f"{cv2.__version__} without its FFMPEG video reader (cannot read .mp4 clips)",
                     "pip install opencv-python-headless (the wheels include FFMPEG)")
    return Check("OpenCV", True, f"{cv2.__version__}, reads .mp4 clips")


def check_accelerate() -> Check:
    try:
        import accelerate
        from accelerate.commands.config.config_args import default_config_file
    except Exception as exc:  # noqa: BLE001
        return Check("accelerate", False, f"not importable ({exc})", "pip install accelerate")
    config = Path(default_config_file)
    where = (f"config {config}" if config.is_file() else
             f"no config at {config}: `accelerate launch` uses its defaults (run `accelerate config` "
             "to set GPUs and mixed precision; a curriculum's [accelerate] table also sets them)")
    return Check("accelerate", True, f"{accelerate.__version__}; {where}")


def check_disk(run_dir: Path, min_free_gib: float = MIN_FREE_GIB) -> Check:
    folder = Path(run_dir).absolute()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free / 2**30
    except OSError as exc:
        return Check("disk", False, f"cannot read the free space of {probe}: {exc.strerror or exc}",
                     "pass a run folder on a readable file system")
    found = f"{free:.1f} GiB free for {run_dir} (on {probe})"
    if free < min_free_gib:
        return Check("disk", False, found,
                     f"free at least {min_free_gib:g} GiB there, or pass another run folder")
    return Check("disk", True, found)


# --------------------------------------------------------------------------- ffmpeg


def check_ffmpeg(ffmpeg: Optional[str] = None) -> list[Check]:
    from dcvc_bench.eval.baselines import CODECS, check_encoders, find_ffmpeg

    try:
        exe = find_ffmpeg(ffmpeg)
    except UserError as exc:
        return [Check("ffmpeg", False, str(exc), required=False)]  # names what is missing and how to install it
    checks = [Check("ffmpeg", True, exe, required=False)]
    for name, codec in CODECS.items():
        try:
            check_encoders(exe, [name])
        except UserError as exc:
            checks.append(Check(codec.encoder, False, f"{exe} has no {codec.encoder} encoder",
                                f"the {name} baseline needs it; " + str(exc).split("; ", 1)[-1], required=False))
        else:
            checks.append(Check(codec.encoder, True, f"encoder present (the {name} baseline)", required=False))
    return checks


# --------------------------------------------------------------------------- weight files


def check_lpips() -> Check:
    try:
        from dcvc_bench.eval.metrics import LPIPSMetric, lpips_weight_files
    except Exception as exc:  # noqa: BLE001
        return Check("LPIPS weights", False, f"cannot import the metrics ({exc})", "fix the torch install",
                     required=False)
    ok, why = LPIPSMetric.available()
    if not ok:
        return Check("LPIPS weights", False, "not found", f"{why}; eval shows LPIPS as unavailable until then",
                     required=False)
    return Check("LPIPS weights", True, ", ".join(str(p) for p in lpips_weight_files().values()), required=False)


def check_fid(weights: Optional[Path] = None) -> Check:
    try:
        from dcvc_bench.eval.fid import fid_available
    except Exception as exc:  # noqa: BLE001
        return Check("FID weights", False, f"cannot import the metrics ({exc})", "fix the torch install",
                     required=False)
    ok, why, path = fid_available(weights)
    if not ok:
        return Check("FID weights", False, "not found", why.removeprefix("FID unavailable: "), required=False)
    return Check("FID weights", True, str(path), required=False)


def check_zoo(curriculum) -> Check:
    """The CompressAI zoo weights the curriculum's I-frame codec loads; when it loads none,
    whether the seed protocol's (full.toml: cheng2020-anchor, quality 6) are cached."""
    from dcvc_bench.curriculum.iframe_spec import CompressAISpec

    spec = curriculum.i_frame
    needed = isinstance(spec, CompressAISpec) and spec.pretrained and spec.checkpoint is None \
        and not curriculum.trains_i_frame
    if not needed:
        spec = CompressAISpec()
    name = f"CompressAI zoo {spec.model_name} q{spec.quality}"
    try:
        from dcvc_bench.models.iframe.compressai import zoo_weight_file

        path = zoo_weight_file(spec.model_name, spec.quality)
    except UserError as exc:
        return Check(name, False, str(exc), "choose a zoo model and quality that has weights", required=needed)
    except Exception as exc:  # noqa: BLE001
        return Check(name, False, f"cannot import CompressAI ({exc})", "pip install compressai", required=needed)
    why = f"{Path(curriculum.source).name} loads it" if needed else \
        f"{Path(curriculum.source).name} does not need it; full.toml does"
    if not path.is_file():
        return Check(name, False, f"{path} not found ({why})",
                     f"place {path.name} in {path.parent} (the CompressAI zoo file; the folder follows "
                     "$TORCH_HOME; never downloaded here)", required=needed)
    return Check(name, True, f"{path} ({why})", required=needed)


def check_spynet(curriculum) -> Check:
    path = curriculum.model.spynet_checkpoint
    source = Path(curriculum.source).name
    if path is None:
        return Check("SpyNet weights", True, f"none named by {source} ([model].spynet_checkpoint): the flow net "
                     "starts from random weights", required=False)
    try:
        from dcvc_bench.models.spynet import ME_Spynet, load_spynet_weights

        load_spynet_weights(ME_Spynet(), path)
    except UserError as exc:
        return Check("SpyNet weights", False, str(exc),
                     f"fix {source}'s [model].spynet_checkpoint (a SpyNet state dict or a DCVC checkpoint)")
    except Exception as exc:  # noqa: BLE001
        return Check("SpyNet weights", False, f"cannot import the model code ({exc})", "fix the torch install")
    return Check("SpyNet weights", True, f"{path} (named by {source}, loads)")


# --------------------------------------------------------------------------- all of it


def run_checks(run_dir: Path, curriculum_path: Optional[Path] = None, ffmpeg: Optional[str] = None,
               min_free_gib: float = MIN_FREE_GIB) -> list[Check]:
    from dcvc_bench.curriculum import load_curriculum

    curriculum = load_curriculum(curriculum_path)  # a bad file is a UserError: one line, exit 2
    return [check_torch(), check_opencv(), check_accelerate(), check_disk(run_dir, min_free_gib),
            check_spynet(curriculum), check_zoo(curriculum), *check_ffmpeg(ffmpeg), check_lpips(), check_fid()]


def doctor_command(run_dir: Path, curriculum_path: Optional[Path], ffmpeg: Optional[str],
                   min_free_gib: float, echo: Callable[[str], None]) -> int:
    checks = run_checks(run_dir, curriculum_path, ffmpeg, min_free_gib)
    width = max(len(c.name if c.required else f"{c.name} (optional)") for c in checks)
    for check in checks:
        echo(check.line(width))
    missing = [c.name for c in checks if c.required and not c.ok]
    if missing:
        echo(f"not ready: {', '.join(missing)} missing (see above)")
        return 1
    optional = [c.name for c in checks if not c.required and not c.ok]
    echo("ready for a run" + (f" ({', '.join(optional)}: optional, missing)" if optional else ""))
    return 0


__all__ = ["Check", "MIN_FREE_GIB", "doctor_command", "run_checks"]
