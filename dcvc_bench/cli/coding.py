"""Real coding from the command line: `encode`, `decode`, and `import-checkpoint` (foreign weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcvc_bench.cli.app import UserError, app, guard


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

    guard(body)


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

    guard(body)


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

    guard(body)
