"""The `dcvc-bench` command line. Thin: parse, call one function, print.

No torch at module level: `dcvc-bench --help`, `plan` and `status` start in well under a
second. Every command turns a :class:`~dcvc_bench.errors.UserError` into one line on
stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Optional

import typer

from dcvc_bench.cli_help import App
from dcvc_bench.errors import EXIT_USAGE, UserError

app = App(
    name="dcvc-bench",
    help="Train, watch and evaluate DCVC learned video codecs from one TOML curriculum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  dcvc-bench run                       # the embedded smoke curriculum (CPU, minutes)\n\n"
        "  dcvc-bench plan curricula/full.toml  # the 17 steps and their accelerate commands\n\n"
        "  dcvc-bench status runs/smoke\n\n"
        "  dcvc-bench tui"
    ),
)
data_app = App(help="Datasets: synthetic clips for quick runs and tests; MP4 ↔ raw YUV ↔ PNG conversion.", no_args_is_help=True)
bench_app = App(help="Benchmarks (printed figures, never timed assertions).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
export_app = App(help="Export a run's curves for other tools (TensorBoard).", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _version() -> str:
    """This installation's version, from the package metadata (the source's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dcvc-bench")
    except PackageNotFoundError:
        from dcvc_bench import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dcvc-bench {_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the installed version and exit.")) -> None:
    """Train, watch and evaluate DCVC learned video codecs from one TOML curriculum."""


def _guard(fn: Callable[[], Optional[int]]) -> None:
    """Run a command body; a UserError becomes one line and exit code 2."""
    try:
        code = fn()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    if code:
        raise typer.Exit(code)


@data_app.command("synth", epilog="Example: dcvc-bench data synth data/synth --videos 4 --frames 30 --size 256x256")
def data_synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the .mp4 clips into."),
    videos: int = typer.Option(4, "--videos", help="Number of clips."),
    frames: int = typer.Option(30, "--frames", help="Frames per clip."),
    size: str = typer.Option("256x256", "--size", help="WIDTHxHEIGHT."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same clips."),
) -> None:
    """Write deterministic synthetic MP4 clips (texture, global pan, moving objects)."""

    def body() -> int:
        from dcvc_bench.data.synth import parse_size, write_synthetic_clips

        paths = write_synthetic_clips(out_dir, videos=videos, frames=frames,
                                      size=parse_size(size), seed=seed)
        for p in paths:
            typer.echo(str(p))
        return 0

    _guard(body)


@data_app.command("convert", epilog="Examples: dcvc-bench data convert clip.mp4 clip_256x256_30fps_420_8bit.yuv\n\n"
                  "dcvc-bench data convert Beauty_1920x1080_120fps_420_8bit_YUV.yuv beauty_png/ --frames 96\n\n"
                  "dcvc-bench data convert raw.yuv out.mp4 --size 832x480 --in-bit-depth 10 --bit-depth 10")
def data_convert(
    src: Path = typer.Argument(..., help="A video file (.mp4), a raw .yuv 4:2:0 file or a folder of PNG/JPEG frames."),
    dst: Path = typer.Argument(..., help="OUT.yuv (raw 4:2:0), OUT.mp4 (lossless H.264) or a new folder (PNG frames)."),
    matrix: str = typer.Option("bt709", "--matrix", help="YUV<->RGB matrix: bt709 or bt601."),
    range_: str = typer.Option("full", "--range", help="YUV code range: full or limited."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Output bits: 8 or 10 for .yuv/.mp4, 8 or 16 "
                                            "for PNG (default: the source's)."),
    size: Optional[str] = typer.Option(None, "--size", help="WIDTHxHEIGHT of a .yuv input whose name does not say it."),
    in_bit_depth: Optional[int] = typer.Option(None, "--in-bit-depth", help="Bit depth of a .yuv input whose name "
                                               "does not say it (default 8)."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate (MP4 output; default the source's, else 30)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Convert only the first N frames."),
) -> None:
    """Convert between MP4, raw YUV 4:2:0 and PNG frames with a stated colour conversion (BT.709 full range)."""

    def body() -> int:
        from dcvc_bench.data.convert import convert

        if range_ not in ("full", "limited"):
            raise UserError(f"--range: must be full or limited, got {range_!r}")
        width = height = None
        if size is not None:
            from dcvc_bench.data.synth import parse_size

            width, height = parse_size(size)
        convert(src, dst, matrix=matrix, full_range=range_ == "full", bit_depth=bit_depth, width=width,
                height=height, in_bit_depth=in_bit_depth, fps=fps, frames=frames, echo=typer.echo)
        return 0

    _guard(body)


@bench_app.command("train", epilog="Examples: dcvc-bench bench train --preset tiny --crop 64 --batch 2 --gop 3 --stage 4\n\n"
                   "dcvc-bench bench train --kind iframe --type rvq --crop 256 --batch 4 --iters 3")
def bench_train(
    kind: str = typer.Option("pframe", help="pframe (the DCVC step) or iframe (the I-frame step)."),
    type_: Optional[str] = typer.Option(None, "--type", help="iframe: an I-frame type the I-frame step trains "
                                        "(see python -m dcvc_bench.train.iframe --help; default the RVQ-VQGAN)."),
    config: Optional[str] = typer.Option(None, help="iframe vqgan/rvq: the JSON architecture (default the "
                                          "shipped vqgan_f16 / rvq_f16_8)."),
    preset: str = typer.Option("tiny", help="pframe: model preset, dcvc (paper widths) or tiny."),
    crop: int = typer.Option(64, help="Crop size (px)."),
    batch: int = typer.Option(2, help="Batch size."),
    gop: int = typer.Option(3, help="pframe: GOP size (frames per sample)."),
    stage: int = typer.Option(4, help="pframe: training stage 1-4 (decides frozen modules and loss)."),
    iters: int = typer.Option(5, help="Timed iterations (after one warm-up)."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    gop_opt: bool = typer.Option(False, "--gop-opt", help="pframe: stage-4 GOP-level optimisation."),
    runs: int = typer.Option(3, help="pframe: timed runs of --iters iterations each; median and min are printed."),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: what torch uses)."),
    plain: bool = typer.Option(False, "--plain", help="pframe: today's eager NCHW path (the yardstick)."),
    memory_format: Optional[str] = typer.Option(None, "--memory-format", help="pframe: channels_last or "
                                                "contiguous (default: the trainer's --memory_format default)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="pframe: write the record (runs, median, min, "
                                            "threads, load) to this file."),
    compare_to: Optional[str] = typer.Option(None, "--compare-to", help="pframe: print the ratio against a "
                                             "record saved with --json."),
) -> None:
    """Training throughput: frames/s (pframe) or images/s (iframe) and peak memory for one configuration."""

    def body() -> int:
        if kind not in ("pframe", "iframe"):
            raise UserError(f"--kind: must be pframe or iframe, got {kind}")
        if kind == "iframe":
            from dcvc_bench.train.bench import run_iframe_benchmark

            run_iframe_benchmark(type_=type_, config=config, crop=crop, batch=batch, iters=iters, device=device,
                                 echo=typer.echo)
            return 0
        from dcvc_bench.train.bench import run_train_benchmark

        run_train_benchmark(preset=preset, crop=crop, batch=batch, gop=gop, stage=stage,
                            iters=iters, device=device, gop_opt=gop_opt, runs=runs, threads=threads,
                            plain=plain, memory_format=memory_format, json_path=json_path,
                            compare_to=compare_to, echo=typer.echo)
        return 0

    _guard(body)


@bench_app.command("infer", epilog="Examples: dcvc-bench bench infer --preset dcvc --size 832x448 --runs 3\n\n"
                   "dcvc-bench bench infer --size 832x448 --plain --json plain.json; "
                   "dcvc-bench bench infer --size 832x448 --compare-to plain.json")
def bench_infer(
    preset: str = typer.Option("dcvc", help="Model preset, dcvc (paper widths) or tiny."),
    size: str = typer.Option("832x448", help="Frame size WIDTHxHEIGHT."),
    frames: int = typer.Option(1, help="P-frames per timed run."),
    runs: int = typer.Option(3, help="Timed runs (after one warm-up P-frame); median and min are printed."),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: what torch uses)."),
    plain: bool = typer.Option(False, "--plain", help="Today's eager NCHW path instead of the default channels_last one."),
    memory_format: Optional[str] = typer.Option(None, "--memory-format", help="channels_last (default) or contiguous."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the record to this file."),
    compare_to: Optional[str] = typer.Option(None, "--compare-to", help="Print the ratio against a record saved with --json."),
) -> None:
    """Estimation inference: ms per P-frame (the P-frame network's forward, estimated rate, no bytes)."""

    def body() -> int:
        from dcvc_bench.data.synth import parse_size
        from dcvc_bench.codec.infer_bench import run_infer_benchmark

        run_infer_benchmark(preset=preset, size=parse_size(size), frames=frames, runs=runs, threads=threads,
                            plain=plain, memory_format=memory_format, json_path=json_path, compare_to=compare_to, echo=typer.echo)
        return 0

    _guard(body)


@app.command("plan", epilog="Example: dcvc-bench plan curricula/full.toml --json")
def plan(
    curriculum: Path = typer.Argument(..., help="Curriculum TOML file."),
    as_json: bool = typer.Option(False, "--json", help="Print the steps as JSON."),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="local|slurm",
                                           help="Plan for this launcher (overrides [launcher] kind); slurm prints each job script."),
) -> None:
    """The steps in order, how each starts, its exact accelerate command; status and next action if run before."""

    def body() -> int:
        from dcvc_bench.runner.commands import plan_command

        return plan_command(curriculum, as_json, launcher)

    _guard(body)


@app.command("run", epilog="Example: dcvc-bench run curricula/full.toml --gpus 0,1,2,3")
def run(
    curriculum: Optional[Path] = typer.Argument(None, help="Curriculum TOML file (default: the embedded smoke curriculum)."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Run tracks in parallel, one GPU each, e.g. 0,1,2,3."),
    launcher: Optional[str] = typer.Option(None, "--launcher", metavar="local|slurm",
                                           help="Where steps run (overrides [launcher] kind): local subprocesses or Slurm jobs."),
) -> None:
    """Run or continue a curriculum: done steps are skipped, an interrupted one resumes. Ctrl-C saves and stops."""

    def body() -> int:
        from dcvc_bench.runner.commands import run_command

        return run_command(curriculum, gpus, launcher)

    _guard(body)


@app.command("status", epilog="Example: dcvc-bench status runs/smoke")
def status(run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke.")) -> None:
    """A run folder's steps, epochs, best loss, last eval, checkpoints, and what the next run would do."""

    def body() -> int:
        from dcvc_bench.runner.commands import status_command

        return status_command(run_dir)

    _guard(body)


@export_app.command("tensorboard", epilog="Example: dcvc-bench export tensorboard runs/smoke")
def export_tensorboard(
    run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default RUN_DIR/tb-export); one TensorBoard run per step."),
) -> None:
    """TensorBoard event files from a run's events.jsonl (the scalars the tensorboard tracker logs), for runs trained without it."""

    def body() -> int:
        from dcvc_bench.runner.export_tb import export_tensorboard_command

        return export_tensorboard_command(run_dir, out)

    _guard(body)


@app.command("skip", epilog=("Examples:\n\n"
                             "  dcvc-bench skip runs/smoke l2048-s1g3         # never launch it\n\n"
                             "  dcvc-bench skip runs/smoke l2048-s1g3 --undo  # run it again"))
def skip(
    run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke."),
    step_id: str = typer.Argument(..., help="The step's id as `dcvc-bench status` lists it, e.g. l2048-s1g3."),
    undo: bool = typer.Option(False, "--undo", help="Stop skipping the step: the next run decides it as before."),
) -> None:
    """Skip a step: `run` never launches it, and the next step of its track starts as if it were absent. Refused while a run holds the folder."""

    def body() -> int:
        from dcvc_bench.runner.commands import skip_command

        return skip_command(run_dir, step_id, undo)

    _guard(body)


@app.command("tui", epilog="Example: dcvc-bench tui runs/smoke")
def tui(target: Optional[Path] = typer.Argument(
        None, help="A curriculum .toml or a run folder (default: pick one from curricula/ and runs/).")) -> None:
    """The Textual workbench: the curriculum tree, live losses, BPP/PSNR, evaluations and
    checkpoints; start, stop and follow runs (also one started in another terminal)."""

    def body() -> int:
        import gc

        gc.disable()  # startup allocates much and frees little; the app turns it back on once painted
        from dcvc_bench.tui.app import run_tui

        return run_tui(target)

    _guard(body)


@app.command("doctor", epilog=("Examples:\n\n"
                               "  dcvc-bench doctor                                  # before the first run\n\n"
                               "  dcvc-bench doctor runs --curriculum curricula/full.toml"))
def doctor(
    run_dir: Path = typer.Argument(Path("runs"), help="The folder runs will be written into (its free disk is checked)."),
    curriculum: Optional[Path] = typer.Option(None, "--curriculum", help="Check the weight files this curriculum "
                                              "loads (default: the embedded smoke curriculum, as `run`)."),
    ffmpeg: Optional[str] = typer.Option(None, "--ffmpeg", help="The ffmpeg executable to check (default: ffmpeg on PATH)."),
    min_free_gb: float = typer.Option(5.0, "--min-free-gb", help="Free disk (GiB) the run folder needs."),
) -> None:
    """Check the environment a run needs: torch build and device, OpenCV, accelerate, free disk,
    SpyNet / CompressAI zoo / LPIPS / FID weight files, ffmpeg and its x265/x264 encoders.

    One line per check (ok or missing, and what to do). Exit code 0 when everything a
    training run needs is there, 1 otherwise; ffmpeg, LPIPS and FID are optional (eval
    skips them or says why)."""

    def body() -> int:
        from dcvc_bench.doctor import doctor_command

        return doctor_command(run_dir, curriculum, ffmpeg, min_free_gb, echo=typer.echo)

    _guard(body)


_BASE = "Baselines (x265/x264 via ffmpeg)"
_OUT = "Output"
_METRICS = "Metrics"
# FID options, shared by `eval` and `eval-iframe`.
_FID = typer.Option(None, "--fid/--no-fid", help="FID per RD point over all its frames. Default: when its weights "
                    "are here and enough frames are evaluated (else the reason is shown); --fid: required (exit 2 "
                    "when it cannot be computed); --no-fid: skipped.", rich_help_panel=_METRICS, show_default=False)
_FID_WEIGHTS = typer.Option(None, "--fid-weights", help="torch-fidelity's Inception weights file (default: "
                            "weights-inception-2015-12-05-6726825d.pth in $TORCH_HOME/hub/checkpoints).",
                            rich_help_panel=_METRICS)
_FID_DIMS = typer.Option(2048, "--fid-dims", help="Inception feature size: 2048 (standard FID), 768, 192 or 64; "
                         "FID needs more frames than this.", rich_help_panel=_METRICS)


@app.command("eval", epilog=(
    "Examples:\n\n"
    "  dcvc-bench eval                                   # the latest run's tracks on its validation clips\n\n"
    "  dcvc-bench eval --checkpoint runs/smoke --real --baselines x265,x264 --qp 22,27,32,37\n\n"
    "  dcvc-bench eval --checkpoint runs/rvq --rvq-layers 2,4,6,8      # one curve per RVQ I-frame depth\n\n"
    "  dcvc-bench eval --baselines-only --videos clips/ --baselines x265 --crf 23,28,33\n\n"
    "  dcvc-bench eval --preset dcvc-allframes --color yuv420 --dataset-config uvg.json --real "
    "--anchor-json vtm_17.0_yuv420_LB_allf_ip0.json"))
def eval_command(
    checkpoint: Optional[list[Path]] = typer.Option(
        None, "--checkpoint", help="A checkpoint, a track folder or a run folder (all its tracks); repeatable. "
        "Default: the most recent run under ./runs (each track's highest-stage final, else best)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Folder of .mp4 clips or one clip (default: the run's validation clips)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per clip (fewer when a clip is shorter). Default: the --preset's, the dataset config's, else 96.", show_default=False),
    intra_period: Optional[int] = typer.Option(None, "--intra-period", help="An I-frame every N frames; -1: only the first. Default: the --preset's, the dataset config's, else 32.", show_default=False),
    conditions: Optional[str] = typer.Option(None, "--preset", help="Test condition: dcvc-ctc (96 frames, intra period 32) or dcvc-allframes (all frames, intra period -1); both pad, never crop.", show_default=False),
    dataset_config: Optional[Path] = typer.Option(None, "--dataset-config", help="Sequences in microsoft/DCVC's dataset-config JSON (classes with base_path, sequences with frames and gop/intra_period); instead of --videos."),
    color: str = typer.Option("rgb", "--color", help="rgb (RGB metrics) or yuv420: the learned codec's RGB back to YUV 4:2:0 (BT.709 full range), x265/x264 coding the 4:2:0 source at 10 bits; PSNR/MS-SSIM per plane, averages 6:1:1."),
    real: bool = typer.Option(False, "--real", help="Really code every frame (bitstream bits; estimate and gap shown) instead of estimating bits."),
    ema: bool = typer.Option(False, "--ema", help="Use the checkpoints' EMA weights."),
    rvq_layers: Optional[str] = typer.Option(None, "--rvq-layers", help="RVQ I-frame depths, e.g. 2,4,6,8: one RD point per track and depth, one curve per depth (runs whose I-frame codec is RVQ)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="x265, x264 or x265,x264 on the same frames.", rich_help_panel=_BASE),
    preset: str = typer.Option("medium", "--baseline-preset", help="x265/x264 preset (medium, veryslow for anchors, ...).", rich_help_panel=_BASE),
    qp: Optional[str] = typer.Option(None, "--qp", help="Constant QPs, e.g. 22,27,32,37 (the default).", rich_help_panel=_BASE),
    crf: Optional[str] = typer.Option(None, "--crf", help="CRF values instead of QPs.", rich_help_panel=_BASE),
    anchor: Optional[str] = typer.Option(None, "--anchor", help="Curve the BD-rates are measured against (default: x265 when run).", rich_help_panel=_BASE),
    anchor_json: Optional[Path] = typer.Option(None, "--anchor-json", help="A DCVC-format results JSON (e.g. microsoft/DCVC's anchors/vtm_17.0_yuv420_LB_allf_ip0.json): BD-rate of every curve per class and averaged, as compare_bd_rate.py computes it.", rich_help_panel=_BASE),
    anchor_name: Optional[str] = typer.Option(None, "--anchor-name", help="The --anchor-json curve's name (default: its file name).", rich_help_panel=_BASE),
    anchor_metric: str = typer.Option("psnr", "--anchor-metric", help="Distortion for --anchor-json BD-rates: psnr (YUV: 6:1:1), msssim, psnr_y, psnr_u, psnr_v, msssim_y, ...", rich_help_panel=_BASE),
    bd_method: Optional[str] = typer.Option(None, "--bd-method", help="pchip (bd-metric's BD_RATE as compare_bd_rate.py uses it; the default with --anchor-json) or akima (the bjontegaard package; the default otherwise).", rich_help_panel=_BASE, show_default=False),
    baselines_only: bool = typer.Option(False, "--baselines-only", help="Evaluate only the baselines (no checkpoint).", rich_help_panel=_BASE),
    ffmpeg: Optional[str] = typer.Option(None, "--ffmpeg", help="The ffmpeg executable (default: ffmpeg on PATH).", rich_help_panel=_BASE),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here.", rich_help_panel=_OUT),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write one CSV row per codec and clip here.", rich_help_panel=_OUT),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Also write the RD curves PNG here.", rich_help_panel=_OUT),
    linear_bpp: bool = typer.Option(False, "--linear-bpp", help="The RD PNG's BPP axis linear (default: logarithmic, so far-apart codecs stay readable).", rich_help_panel=_OUT),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look for the most recent run.", rich_help_panel=_OUT),
    fid: Optional[bool] = _FID,
    fid_weights: Optional[Path] = _FID_WEIGHTS,
    fid_dims: int = _FID_DIMS,
) -> None:
    """Evaluate checkpoints (estimated or --real bits) and x265/x264 on the same clips.

    BPP, RGB PSNR, SSIM, MS-SSIM and LPIPS per clip and overall, FID per RD point, I- vs
    P-frames, RD curves and BD-rates. Results also go to the run folder's eval/
    (latest.json, rd.json, rd.png)."""

    def body() -> int:
        from dcvc_bench.eval.run_eval import EvalRequest, eval_command as run_eval_command

        return run_eval_command(EvalRequest(
            checkpoints=list(checkpoint or []), videos=videos, frames=frames, intra_period=intra_period,
            real=real, ema=ema, device=device, json_out=json_out, csv_out=csv_out, plot_out=plot_out,
            baselines=baselines, preset=preset, qp=qp, crf=crf, anchor=anchor, ffmpeg=ffmpeg,
            baselines_only=baselines_only, runs_dir=runs_dir, rvq_layers=rvq_layers, fid=fid,
            fid_weights=fid_weights, fid_dims=fid_dims, linear_bpp=linear_bpp, conditions=conditions,
            dataset_config=dataset_config, color=color, anchor_json=anchor_json, anchor_name=anchor_name,
            anchor_metric=anchor_metric, bd_method=bd_method))

    _guard(body)


@app.command("eval-iframe", epilog=(
    "Examples:\n\n"
    "  dcvc-bench eval-iframe                            # the latest run's I-frame codec on its clips\n\n"
    "  dcvc-bench eval-iframe --type opencv --model jpeg --quality 50,70,90 --videos clips/ --baselines x265\n\n"
    "  dcvc-bench eval-iframe --type compressai --model cheng2020-anchor --quality 3,6 --pretrained --real\n\n"
    "  dcvc-bench eval-iframe --type rvq --checkpoint rvq.pth --config rvq.json --layers 2,4,6,8 --real --videos clips/"))
def eval_iframe_command(
    checkpoint: Optional[list[Path]] = typer.Option(None, "--checkpoint", help="Use the I-frame codec recorded in this checkpoint or run folder; repeatable. With --type, the type's own weights file (a VQ checkpoint) is its weights."),
    type_: Optional[str] = typer.Option(None, "--type", help="An I-frame type, as in the curriculum's [i_frame] table (instead of a checkpoint's codec); its own defaults apply."),
    model: Optional[str] = typer.Option(None, "--model", help="The type's model: a CompressAI zoo name; OpenCV's jpeg or webp."),
    quality: Optional[str] = typer.Option(None, "--quality", help="The type's rate setting, or several (50,70,90): one RD point each."),
    pretrained: bool = typer.Option(False, "--pretrained", help="Zoo weights from the torch hub cache (CompressAI)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A local weights file for the type."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="FIELD=VALUE: any other key of the type's [i_frame] table, e.g. --set codec=webp; repeatable."),
    config: Optional[Path] = typer.Option(None, "--config", help="The type's architecture JSON (vqgan, rvq: the config the checkpoint was trained with)."),
    layers: Optional[str] = typer.Option(None, "--layers", help="Depths of a rate-scalable type (rvq), e.g. 2,4,6,8: the codec built once, one RD point per depth."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Folder of .mp4 clips or one clip (default: the run's validation clips)."),
    frames: int = typer.Option(96, "--frames", help="Frames per clip, each coded as an I-frame."),
    real: bool = typer.Option(False, "--real", help="encode + decode every frame (bytes) instead of estimating bits."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="x265/x264 all-intra on the same frames.", rich_help_panel=_BASE),
    preset: str = typer.Option("medium", "--baseline-preset", "--preset", help="x265/x264 preset (medium, veryslow, ...).", rich_help_panel=_BASE),
    qp: Optional[str] = typer.Option(None, "--qp", help="Constant QPs, e.g. 22,27,32,37 (the default): one baseline RD point each.", rich_help_panel=_BASE),
    crf: Optional[str] = typer.Option(None, "--crf", help="CRF values instead of QPs.", rich_help_panel=_BASE),
    anchor: Optional[str] = typer.Option(None, "--anchor", help="Curve the BD-rates are measured against (default: x265 when run).", rich_help_panel=_BASE),
    ffmpeg: Optional[str] = typer.Option(None, "--ffmpeg", help="The ffmpeg executable (default: ffmpeg on PATH).", rich_help_panel=_BASE),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here.", rich_help_panel=_OUT),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Also write one CSV row per codec and clip here.", rich_help_panel=_OUT),
    plot_out: Optional[Path] = typer.Option(None, "--plot", help="Also write the RD curves PNG here.", rich_help_panel=_OUT),
    linear_bpp: bool = typer.Option(False, "--linear-bpp", help="The RD PNG's BPP axis linear (default: logarithmic, so far-apart codecs stay readable).", rich_help_panel=_OUT),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where to look for the most recent run.", rich_help_panel=_OUT),
    fid: Optional[bool] = _FID,
    fid_weights: Optional[Path] = _FID_WEIGHTS,
    fid_dims: int = _FID_DIMS,
) -> None:
    """An I-frame codec alone (the seed's test_iframe): every frame an I-frame.

    BPP (and a VQ codec's uniform and entropy rates), RGB PSNR, SSIM, MS-SSIM, LPIPS per
    clip and overall, FID per point; one RD point per quality or --layers depth."""

    def body() -> int:
        from dcvc_bench.eval.iframe_eval import IFrameEvalRequest, eval_iframe_command as run_command

        return run_command(IFrameEvalRequest(
            checkpoints=list(checkpoint or []), type=type_, model=model, quality=quality, pretrained=pretrained,
            weights=weights, settings=list(settings or []), config=config, layers=layers, videos=videos,
            frames=frames, real=real, device=device, json_out=json_out,
            csv_out=csv_out, plot_out=plot_out, baselines=baselines, preset=preset, qp=qp, crf=crf,
            anchor=anchor, ffmpeg=ffmpeg, runs_dir=runs_dir, fid=fid, fid_weights=fid_weights, fid_dims=fid_dims,
            linear_bpp=linear_bpp))

    _guard(body)


@app.command("encode", epilog="Example: dcvc-bench encode clip.mp4 clip.dcvc --checkpoint model.pth --frames 32")
def encode(
    src: Path = typer.Argument(..., help="Input video (.mp4)."),
    dst: Path = typer.Argument(..., help="Output stream (.dcvc)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="dcvc-bench checkpoint (.pth): model and I-frame codec."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Code the first N frames (default: all)."),
    intra_period: int = typer.Option(32, "--intra-period", help="An I-frame every N frames; -1: only the first."),
    ema: bool = typer.Option(False, "--ema", help="Use the checkpoint's EMA weights."),
) -> None:
    """Really encode a video: every frame entropy-coded (rANS), one self-contained stream."""

    def body() -> int:
        from dcvc_bench.codec.files import encode_file

        return encode_file(src, dst, checkpoint, frames=frames, intra_period=intra_period, ema=ema, echo=typer.echo)

    _guard(body)


@app.command("decode", epilog="Example: dcvc-bench decode clip.dcvc frames/ --checkpoint model.pth")
def decode(
    src: Path = typer.Argument(..., help="Input stream (.dcvc)."),
    dst: Path = typer.Argument(..., help="A folder (PNG frames, bit-exact) or a .mp4 (mp4v: lossy, for viewing only)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="The checkpoint the stream was encoded with."),
    max_size: Optional[str] = typer.Option(
        None, "--max-size", metavar="WIDTHxHEIGHT",
        help="Refuse streams whose frames have more pixels than this, before anything is allocated "
             "(default 4096x2160; at most 8192x8192). Lower it on a small machine; raise it for a stream you trust."),
) -> None:
    """Decode a stream made by `dcvc-bench encode`. A stream from another model, a
    truncated, corrupted or forged one, or one of frames larger than --max-size is refused
    with a one-line error (exit code 2) before any frame is decoded."""

    def body() -> int:
        from dcvc_bench.codec.files import decode_file

        return decode_file(src, dst, checkpoint, max_size=max_size, echo=typer.echo)

    _guard(body)


@app.command("import-checkpoint", epilog=(
    "Examples:\n\n"
    "  dcvc-bench import-checkpoint --from opendcvcs model_dcvc_lambda_2048.0_quality_3_stage_4_best.pth imported.pth\n\n"
    "  dcvc-bench import-checkpoint --from dcvc-official model_dcvc_quality_0_psnr.pth dcvc_q0.pth --set quality=3\n\n"
    "  dcvc-bench import-checkpoint --from opendcvcs final.pth out.pth --i-frame opencv   # JPEG I-frames, no weights"))
def import_checkpoint_command(
    src: Path = typer.Argument(..., metavar="IN", help="The foreign checkpoint (.pth): a training checkpoint or a bare state dict."),
    dst: Path = typer.Argument(..., metavar="OUT", help="The dcvc-bench checkpoint to write (with its .pth.json sidecar)."),
    source: str = typer.Option(..., "--from", help="The source layout: opendcvcs (the seed protocol's DCVC_net) or "
                               "dcvc-official (microsoft/DCVC's released DCVC weights)."),
    i_frame: Optional[str] = typer.Option(None, "--i-frame", help="The I-frame codec type to pair the P-frame model "
                                          "with (default: CompressAI cheng2020-anchor q6, zoo weights)."),
    settings: Optional[list[str]] = typer.Option(None, "--set", help="FIELD=VALUE of the I-frame type, e.g. "
                                                 "--set quality=3 or --set checkpoint=cheng.pth; repeatable."),
    lambda_value: Optional[float] = typer.Option(None, "--lambda", help="λ to record (default: the source's, if any)."),
    quality_index: Optional[int] = typer.Option(None, "--quality-index", help="Quality index to record (default: the source's)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Convert a DCVC checkpoint trained elsewhere into a dcvc-bench checkpoint (real coding,
    eval, encode/decode, TUI) and print what was changed and what cannot be kept."""

    def body() -> int:
        from dcvc_bench.curriculum.iframe_spec import COMPRESSAI_TYPE, spec_from_options
        from dcvc_bench.models.imports import import_checkpoint

        pairs = {}
        for item in settings or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise UserError(f"--set {item}: expected FIELD=VALUE")
            pairs[key.strip()] = value.strip()
        try:
            spec = spec_from_options(i_frame or COMPRESSAI_TYPE, {}, pairs)
        except UserError as exc:  # its messages name eval-iframe's --type
            raise UserError(str(exc).replace("--type", "--i-frame")) from None
        report = import_checkpoint(source, src, dst, i_frame=spec, lambda_value=lambda_value,
                                   quality_index=quality_index, force=force)
        typer.echo(f"wrote {report.path} (model_preset dcvc, model_options {report.options or '{}'})")
        for change in report.changes:
            typer.echo(f"  changed: {change}")
        for note in report.notes:
            typer.echo(f"  note: {note}")
        return 0

    _guard(body)


@bench_app.command("codec", epilog="Example: dcvc-bench bench codec --preset dcvc --size 1920x1088 --frames 2")
def bench_codec(
    preset: Optional[str] = typer.Option(None, help="Model preset without --checkpoint: dcvc or tiny (default tiny)."),
    size: str = typer.Option("256x256", "--size", help="WIDTHxHEIGHT of the synthetic clip."),
    frames: int = typer.Option(3, "--frames", help="Frames (one I-frame, then P-frames)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Trained checkpoint (default: random weights)."),
    max_ref_positions: int = typer.Option(10000, "--max-ref-positions",
                                          help="Time the per-position coder on at most this many latent positions; "
                                               "beyond, extrapolate (and say so)."),
    repeats: int = typer.Option(3, "--repeats", help="Time each autoregressive coder this many times (alternating); print the median and the min."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Coding threads (default: the codec's, min(CPUs, 8))."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as a JSON record to this file."),
    compare_to: Optional[Path] = typer.Option(None, "--compare-to", help="A record written by --json: print each figure's ratio against it."),
) -> None:
    """Real coding: encode/decode frames/s, wavefront vs per-position autoregressive
    coding (same bytes, speed-up), real vs estimated rate."""

    def body() -> int:
        from dcvc_bench.codec.bench import run_codec_benchmark
        from dcvc_bench.data.synth import parse_size

        run_codec_benchmark(preset=preset, size=parse_size(size), frames=frames,
                            checkpoint=str(checkpoint) if checkpoint else None,
                            max_ref_positions=max_ref_positions, repeats=repeats, echo=typer.echo,
                            threads=threads, json_path=str(json_out) if json_out else None,
                            compare_to=str(compare_to) if compare_to else None)
        return 0

    _guard(body)


@bench_app.command("iframe", epilog=(
    "Examples:\n\n"
    "  dcvc-bench bench iframe --type rvq --size 256x256 --config dcvc_bench/models/iframe/vq_configs/rvq_f16_8.json --layers 4\n\n"
    "  dcvc-bench bench iframe --type vqgan --size 256x256 --config vqgan.json --checkpoint vqgan.pth"))
def bench_iframe(
    type_: str = typer.Option(..., "--type", help="An I-frame type, as in the curriculum's [i_frame] table."),
    size: str = typer.Option("256x256", "--size", help="WIDTHxHEIGHT of the synthetic frames."),
    config: Optional[Path] = typer.Option(None, "--config", help="The type's architecture JSON (vqgan, rvq)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="The type's weights (default: an untrained network, timings only)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Depth used by a rate-scalable type (rvq; default: all)."),
    frames: int = typer.Option(3, "--frames", help="Timed frames (after one warm-up frame)."),
    repeats: int = typer.Option(3, "--repeats", help="Runs per frame; the figures are medians over frames x runs."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
) -> None:
    """An I-frame codec alone: estimate, encode and decode ms per frame (medians), real vs estimated BPP."""

    def body() -> int:
        from dcvc_bench.codec.iframe_bench import run_iframe_benchmark
        from dcvc_bench.data.synth import parse_size

        run_iframe_benchmark(type_=type_, size=parse_size(size), config=config, checkpoint=checkpoint, layers=layers,
                             frames=frames, repeats=repeats, device=device, echo=typer.echo)
        return 0

    _guard(body)


@bench_app.command("data", epilog="Example: dcvc-bench bench data --workers 0,1,2 --gop 2 --crop 256 --batch 4 --batches 60")
def bench_data(
    folder: Optional[Path] = typer.Option(None, "--folder", help="A training folder of clips (default: synthetic 720p MP4s)."),
    workers: str = typer.Option("0,1,2", "--workers", help="Comma-separated DataLoader worker counts, one row each."),
    gop: int = typer.Option(2, "--gop", help="GOP size (frames per sample)."),
    crop: int = typer.Option(256, "--crop", help="Crop size (px)."),
    batch: int = typer.Option(4, "--batch", help="Batch size."),
    batches: int = typer.Option(40, "--batches", help="Batches per epoch (the first is start-up, not timed)."),
    clips: int = typer.Option(4, "--clips", help="Synthetic clips (without --folder)."),
    frames: int = typer.Option(60, "--frames", help="Frames per synthetic clip."),
    size: str = typer.Option("1280x720", "--size", help="WIDTHxHEIGHT of the synthetic clips."),
    frame_cache: bool = typer.Option(False, "--frame-cache", help="Also measure through the decoded-frame cache."),
    consumption: Optional[float] = typer.Option(None, "--consumption", help="Frames/s the trainer takes (adds the margin)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Also write the record to this JSON file."),
) -> None:
    """The training loader's frames/s per worker count and its memory (RSS) over an epoch."""

    def body() -> int:
        from dcvc_bench.data.synth import parse_size
        from dcvc_bench.train.data_bench import run_data_benchmark
        from dcvc_bench.train.gpu_bench import parse_ints, write_json

        record = run_data_benchmark(folder=str(folder) if folder else None, workers=parse_ints("--workers", workers),
                                    gop=gop, crop=crop, batch=batch, batches=batches, clips=clips, frames=frames,
                                    size=parse_size(size), frame_cache=frame_cache, consumption=consumption,
                                    echo=typer.echo)
        if json_file is not None:
            write_json(json_file, record)
        return 0

    _guard(body)


@bench_app.command("gpu", epilog="Example (one short GPU visit, < 8 min on an H200): dcvc-bench bench gpu --json bench-gpu.json\n\n"
                   "CPU rehearsal (tiny sizes): dcvc-bench bench gpu --allow-cpu --no-compile --json /tmp/gpu.json")
def bench_gpu(
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the record to this JSON file."),
    allow_cpu: bool = typer.Option(False, "--allow-cpu", help="Run on CPU at tiny sizes (tests, CI) instead of refusing."),
    preset: Optional[str] = typer.Option(None, help="Model preset (default dcvc on CUDA, tiny with --allow-cpu)."),
    crop: Optional[int] = typer.Option(None, help="Training crop (default 256 on CUDA, 64 on CPU)."),
    batches: Optional[str] = typer.Option(None, "--batches", help="Comma-separated training batch sizes (default 8,16; CPU 2)."),
    iters: Optional[int] = typer.Option(None, help="Timed iterations per training row (default 10; CPU 1)."),
    bf16: bool = typer.Option(True, "--bf16/--no-bf16", help="bf16 autocast (entropy models and rates stay fp32)."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last", help="channels_last weights."),
    compile_: bool = typer.Option(True, "--compile/--no-compile", help="torch.compile the P-frame network."),
    i_frame: Optional[str] = typer.Option(None, "--i-frame", help="cheng2020 (random weights, on the GPU; CUDA default) or jpeg."),
    infer_size: Optional[str] = typer.Option(None, "--infer-size", help="WIDTHxHEIGHT of inference and coding (default 1920x1080; CPU 128x128)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Loader workers (default min(8, CPUs); CPU 1)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated parts: train, infer, codec, data (default all)."),
    budget: float = typer.Option(450.0, "--budget", help="Seconds; rows not started by then are skipped (and say so)."),
) -> None:
    """The GPU visit's one script: training P-frames/s (bf16, channels_last, compiled) vs the
    H200 ceiling, 1080p inference and real coding, peak GPU memory, loader vs trainer."""

    def body() -> int:
        from dcvc_bench.train.gpu_bench import GpuBenchOptions, run_gpu_benchmark, write_json

        options = GpuBenchOptions.resolve(allow_cpu=allow_cpu, preset=preset, crop=crop, batches=batches,
                                          iters=iters, bf16=bf16, channels_last=channels_last, compile_=compile_,
                                          i_frame=i_frame, infer_size=infer_size, workers=workers, only=only,
                                          budget=budget)
        record = run_gpu_benchmark(options, echo=typer.echo)
        if json_file is not None:
            write_json(json_file, record)
            typer.echo(f"wrote {json_file}")
        return 0

    _guard(body)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
