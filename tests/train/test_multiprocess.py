"""A step with ``num_processes = 2`` on the CPU (DDP over gloo), launched with the command
the curriculum builds (issue 15, item 4): it trains, evaluates and checkpoints once (rank
0 writes the checkpoints and the events; the other rank writes nothing), both ranks hold
the same weights after every optimizer step (the trainer's own ``ranks`` events, with
``--check_ranks step``), and the ranks train on different samples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dcvc_bench.curriculum import accelerate_argv, expand, parse_curriculum, planned_run_flags
from dcvc_bench.events import read_events

TWO_CPU_PROCESSES = """\
name = "mp"
output_dir = "{out}"

[data]
train_dir = "{data}"
val_dir = "{data}"

[model]
preset = "tiny"

[i_frame]
type = "opencv"

[train]
batch_size = 1
crop_size = 64
num_workers = 0
steps_per_epoch = 2
eval_max_frames = 3

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2]
epochs = 2

[accelerate]
device = "cpu"
num_processes = 2
cpu_threads_per_process = 1
"""


def _curriculum(tmp_path, data):
    return parse_curriculum(TWO_CPU_PROCESSES.format(out=tmp_path / "runs", data=data))


def test_two_cpu_processes_are_allowed_and_launched_connected(tmp_path, synthetic_clips):
    cur = _curriculum(tmp_path, synthetic_clips)
    step = expand(cur)[0]
    argv = accelerate_argv(cur, step, planned_run_flags(cur, step, expand(cur)))
    launcher = argv[:argv.index("-m")]
    # accelerate's --cpu would start ONE process; its torchrun launcher starts both
    assert "--cpu" not in launcher and "--multi_gpu" in launcher
    assert launcher[launcher.index("--num_processes") + 1] == "2"
    assert launcher[launcher.index("--main_process_port") + 1] == "0"  # a free port: tracks never collide
    assert argv[-1] == "--force_cpu"  # the trainer connects them over gloo


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_two_process_cpu_step_trains_evaluates_and_checkpoints_once_with_identical_weights(
        tmp_path, synthetic_clips):
    cur = _curriculum(tmp_path, synthetic_clips)
    step = expand(cur)[0]
    flags = planned_run_flags(cur, step, expand(cur))
    argv = accelerate_argv(cur, step, flags, python=sys.executable) + ["--check_ranks", "step"]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("[dcvc-bench] s1g2: fresh start") == 1  # rank 0 alone reports

    events_file = Path(flags["events_file"])  # absolute: output_dir is
    lines = [line for line in open(events_file).read().splitlines() if line.strip()]
    assert len(lines) == len(set(lines))
    events = read_events(events_file)
    kinds = Counter(e["event"] for e in events)
    assert kinds["step_start"] == 1 and kinds["step_end"] == 1 and kinds["eval"] == 2
    assert events[-1]["status"] == "done"
    trains = [(e["epoch"], e["iter"]) for e in events if e["event"] == "train"]
    assert trains == [(0, 1), (0, 2), (1, 1), (1, 2)]  # 2 iterations per rank per epoch, logged once

    # Identical weights on both ranks after every optimizer step, and different samples.
    ranks = [e for e in events if e["event"] == "ranks"]
    assert [e["optimizer_step"] for e in ranks] == [1, 2, 3, 4]  # one P-frame per GOP, batch 1
    for e in ranks:
        assert e["consistent"] is True and len(e["digests"]) == 2 and len(set(e["digests"])) == 1, e
        assert len(e["batches"]) == 2 and len(set(e["batches"])) == 2, e
    assert len({e["digests"][0] for e in ranks}) == 4  # the weights did change at every step

    # One set of checkpoints: each written once, by rank 0, nothing else in the folder.
    written = Counter((e["kind"], e["epoch"]) for e in events if e["event"] == "checkpoint")
    assert written and max(written.values()) == 1
    ckpt_dir = Path(flags["checkpoint_dir"])
    paths = {Path(e["path"]).name for e in events if e["event"] == "checkpoint"}
    assert sorted(p.name for p in Path(ckpt_dir).iterdir()) == sorted(paths | {f"{p}.json" for p in paths})
    meta = json.loads((Path(ckpt_dir) / f"{next(iter(paths))}.json").read_text())
    assert meta["step_id"] == "s1g2"


def test_the_weight_digest_sees_one_ulp_of_one_weight_and_the_ema():
    import copy

    import torch

    from dcvc_bench.models.video_net import DCVC
    from dcvc_bench.train.ema import EMA
    from dcvc_bench.train.ranks import weights_digest

    torch.manual_seed(0)
    net = DCVC("tiny")
    twin = copy.deepcopy(net)
    assert weights_digest(net) == weights_digest(twin)
    ema, ema_twin = EMA(net, 0.9), EMA(twin, 0.9)
    assert weights_digest(net, ema) == weights_digest(twin, ema_twin) != weights_digest(net)
    with torch.no_grad():
        p = next(twin.parameters())
        p.view(-1)[0] = torch.nextafter(p.view(-1)[0], torch.tensor(float("inf")))
    assert weights_digest(net) != weights_digest(twin)
    with torch.no_grad():
        next(iter(ema_twin.shadow.values())).view(-1)[0] += 1.0
    assert weights_digest(twin, ema) != weights_digest(twin, ema_twin)
