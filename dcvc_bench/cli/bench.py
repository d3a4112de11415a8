"""`dcvc-bench bench …`: the benchmarks (printed figures, never timed assertions)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dcvc_bench.cli.app import UserError, bench_app, guard


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

    guard(body)


@bench_app.command("infer", epilog="Examples: dcvc-bench bench infer --preset dcvc --size 832x448 --runs 3\n\n"
                   "dcvc-bench bench infer --size 832x448 --plain --json plain.json; "
                   "dcvc-bench bench infer --size 832x448 --compare-to plain.json")
def bench_infer(
    preset: str = typer.Option("dcvc", help="Model preset, dcvc (paper widths) or tiny."),
    size: str = typer.Option("832x448", help="Frame size WIDTHxHEIGHT."),
    frames: int = typer.Option(1, help="P-frames per timed run."),
    runs: int = typer.Option(3, help="Timed runs (after one warm-up P-frame); median and min are printed."),
    threads: Optional[int] = typer.Option(None, help="torch threads (default: what torch uses)."),
    plain: bool = typer.Option(False, "--plain", help="Today's eager NCHW path, unfused, instead of the default channels_last fused one."),
    memory_format: Optional[str] = typer.Option(None, "--memory-format", help="channels_last (default) or contiguous."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Fuse each conv's activation / residual add into its kernel (default; no effect with --plain)."),
    json_path: Optional[str] = typer.Option(None, "--json", help="Write the record to this file."),
    compare_to: Optional[str] = typer.Option(None, "--compare-to", help="Print the ratio against a record saved with --json."),
) -> None:
    """Estimation inference: ms per P-frame (the P-frame network's forward, estimated rate, no bytes)."""

    def body() -> int:
        from dcvc_bench.data.synth import parse_size
        from dcvc_bench.codec.infer_bench import run_infer_benchmark

        run_infer_benchmark(preset=preset, size=parse_size(size), frames=frames, runs=runs, threads=threads,
                            plain=plain, memory_format=memory_format, fuse=fuse, json_path=json_path, compare_to=compare_to, echo=typer.echo)
        return 0

    guard(body)


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

    guard(body)


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

    guard(body)


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

    guard(body)


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

    guard(body)
