"""`dcvc-bench data …` (synthetic clips, MP4 / raw YUV / PNG conversion) and `export …` (a run's curves for TensorBoard)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcvc_bench.cli.app import UserError, data_app, export_app, guard


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

    guard(body)


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

    guard(body)


@export_app.command("tensorboard", epilog="Example: dcvc-bench export tensorboard runs/smoke")
def export_tensorboard(
    run_dir: Path = typer.Argument(..., help="A run folder, such as runs/smoke."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default RUN_DIR/tb-export); one TensorBoard run per step."),
) -> None:
    """TensorBoard event files from a run's events.jsonl (the scalars the tensorboard tracker logs), for runs trained without it."""

    def body() -> int:
        from dcvc_bench.runner.export_tb import export_tensorboard_command

        return export_tensorboard_command(run_dir, out)

    guard(body)
