"""`dcvc-bench eval` (P-frame codecs, RD curves, baselines) and `eval-iframe` (I-frame codecs)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcvc_bench.cli.app import app, guard


_BASE = "Baselines (x265/x264 via ffmpeg)"
_OUT = "Output"
_METRICS = "Metrics"
# Output and ffmpeg options, shared by `eval` and `eval-iframe`.
_FFMPEG = typer.Option(None, "--ffmpeg", help="The ffmpeg executable (default: ffmpeg on PATH).", rich_help_panel=_BASE)
_JSON = typer.Option(None, "--json", help="Also write the results as JSON here.", rich_help_panel=_OUT)
_CSV = typer.Option(None, "--csv", help="Also write one CSV row per codec and clip here.", rich_help_panel=_OUT)
_PLOT = typer.Option(None, "--plot", help="Also write the RD curves PNG here.", rich_help_panel=_OUT)
_LINEAR_BPP = typer.Option(False, "--linear-bpp", help="The RD PNG's BPP axis linear (default: logarithmic, so far-apart codecs stay readable).", rich_help_panel=_OUT)
_RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Where to look for the most recent run.", rich_help_panel=_OUT)
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
    ffmpeg: Optional[str] = _FFMPEG,
    json_out: Optional[Path] = _JSON,
    csv_out: Optional[Path] = _CSV,
    plot_out: Optional[Path] = _PLOT,
    linear_bpp: bool = _LINEAR_BPP,
    runs_dir: Path = _RUNS_DIR,
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

    guard(body)


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
    ffmpeg: Optional[str] = _FFMPEG,
    json_out: Optional[Path] = _JSON,
    csv_out: Optional[Path] = _CSV,
    plot_out: Optional[Path] = _PLOT,
    linear_bpp: bool = _LINEAR_BPP,
    runs_dir: Path = _RUNS_DIR,
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

    guard(body)
