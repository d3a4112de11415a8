"""`dcvc-bench bench infer`: estimation inference per P-frame, timed.

One P-frame of estimation inference is the P-frame network's forward in eval mode with
gradients off: motion estimated and coded, the frame coded on its context, rates from the
entropy models' likelihoods (the estimated rate, no bytes written), ``x_hat`` decoded. The
input is a synthetic clip (:func:`dcvc_bench.data.synth.clip_frames`: a panning
background with moving objects), so any size works without data; weights are random
(timings are representative: the same arithmetic runs; rates are not).

The default path is channels_last (:data:`~dcvc_bench.models.fastpath.INFER_DEFAULT`)
with each conv's activation or residual add fused into its kernel
(:mod:`dcvc_bench.models.fusion`; the unfused channels_last network's outputs within
float rounding); ``fuse=False`` leaves the convs unfused, ``plain`` runs today's eager NCHW
path, unfused. Figures are printed, never asserted.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from dcvc_bench.models.fastpath import INFER_DEFAULT, PLAIN, check_memory_format, prepare_input, prepare_model
from dcvc_bench.models.video_net import DCVC


def run_infer_benchmark(*, preset: str, size: tuple[int, int], frames: int, runs: int,
                        threads: int | None = None, plain: bool = False, memory_format: str | None = None,
                        fuse: bool = True,
                        json_path: str | None = None, compare_to: str | None = None,
                        echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Time ``runs`` runs of ``frames`` P-frame forwards each, after one warm-up forward.
    ``size`` is (width, height). Returns the record (ms per P-frame per run)."""
    from dcvc_bench.bench_record import finish, load_record, machine_load, make_record
    from dcvc_bench.data.synth import clip_frames
    from dcvc_bench.errors import UserError
    from dcvc_bench.models.fusion import fuse_for_inference

    if runs < 1:
        raise UserError(f"--runs: must be at least 1, got {runs}")
    if frames < 1:
        raise UserError(f"--frames: must be at least 1, got {frames}")
    if threads is not None and threads < 1:
        raise UserError(f"--threads: must be at least 1, got {threads}")
    if compare_to:
        load_record(compare_to)
    if threads is not None:
        torch.set_num_threads(threads)
    load_start = machine_load()
    memory_format = PLAIN if plain else check_memory_format(memory_format or INFER_DEFAULT)

    torch.manual_seed(0)
    net = DCVC(preset)
    net.eval()
    prepare_model(net, memory_format)
    fuse = fuse and not plain
    if fuse:
        fuse_for_inference(net)
    path = "plain" if plain else memory_format + ("+fused" if fuse else "")
    width, height = size
    clip = [torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float().div_(255.0)
            for f in clip_frames(frames + 2, (width, height), np.random.default_rng(0))]
    clip = [prepare_input(f, memory_format) for f in clip]

    def forward(t: int) -> dict[str, Any]:
        return net(clip[t], clip[t + 1])   # the reference: the previous frame

    times: list[float] = []
    with torch.no_grad():
        forward(0)  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            for t in range(frames):
                out = forward(t + 1)
            times.append((time.perf_counter() - t0) / frames)
    params = sum(p.numel() for p in net.parameters())
    med = statistics.median(times)
    echo(f"estimation inference, preset {preset} ({params / 1e6:.2f} M params), {width}x{height}, "
         f"{frames} P-frame(s) per run, {path}, bpp {float(out['bpp']):.3f} (random weights)")
    echo(f"{med * 1000:.0f} ms/P-frame at the median ({1 / med:.2f} P-frames/s)")
    config = {"preset": preset, "width": width, "height": height, "frames": frames}
    record = make_record(bench="infer", config=config, path=path,
                         unit="ms/P-frame", runs=[t * 1000 for t in times],
                         threads=torch.get_num_threads(), load_start=load_start,
                         torch_version=torch.__version__, extra={"memory_format": memory_format, "fused": fuse})
    return finish(record, json_path=json_path, compare_to=compare_to, echo=echo)
