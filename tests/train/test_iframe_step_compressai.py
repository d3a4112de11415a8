"""A CompressAI hyperprior trained by the I-frame step (random weights, 64² crops): its
final is what the P-frame step's --i_frame_checkpoint loads, and it really codes a frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcvc_bench.checkpoint_io import load_iframe_checkpoint
from dcvc_bench.checkpoints import read_meta
from dcvc_bench.curriculum.iframe_spec import spec_from_flags
from dcvc_bench.events import IFRAME_EVENT_FIELDS, read_events

from train_helpers import events_of, iframe_argv, iframe_ckpt, run_iframe_in_process, run_subprocess, step_argv

MODEL, QUALITY, LAMBDA = "bmshj2018-hyperprior", 1, 0.0130


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_clips):
    root = tmp_path_factory.mktemp("compressai")
    argv = iframe_argv(synthetic_clips, root / "ck", root / "c.jsonl", type_="compressai", tag="hp", epochs=2,
                       steps=2, extra=["--i_frame_model_name", MODEL, "--i_frame_quality", str(QUALITY),
                                       "--lambda_value", str(LAMBDA)])
    assert run_iframe_in_process(argv) == 0
    return root


def _spec(final):
    return spec_from_flags({"i_frame_type": "compressai", "i_frame_model_name": MODEL, "i_frame_quality": QUALITY,
                            "i_frame_pretrained": False, "i_frame_checkpoint": str(final)})


def test_events_and_checkpoint_content(trained):
    events = read_events(trained / "c.jsonl")
    for e in events:
        assert set(IFRAME_EVENT_FIELDS[e["event"]]) <= set(e), e
    assert events[0]["lambda"] == LAMBDA and events[0]["i_frame_type"] == "compressai"
    assert not events_of(trained / "c.jsonl", "codebook")
    for e in events_of(trained / "c.jsonl", "train"):
        assert e["bpp"] > 0 and e["rec_loss"] > 0 and e["d_loss"] is None and e["disc_on"] is False
        assert e["loss"] == pytest.approx(LAMBDA * 255 ** 2 * e["rec_loss"] + e["bpp"], rel=1e-4)
    ev = events_of(trained / "c.jsonl", "eval")[-1]
    assert ev["depths"] is None and ev["bpp"] > 0 and ev["rd_loss"] == ev["loss"]
    final = load_iframe_checkpoint(iframe_ckpt(trained / "ck", "hp", "final", "compressai"))
    assert (final["model_name"], final["quality"], final["lambda_value"]) == (MODEL, QUALITY, LAMBDA)
    assert final["aux_optimizer_state_dict"]["state"] and final["optimizer_state_dict"]["state"]
    # update(force=True) was applied: the entropy coder's tables are in the state dict.
    assert final["state_dict"]["entropy_bottleneck._quantized_cdf"].numel() > 0
    meta = read_meta(iframe_ckpt(trained / "ck", "hp", "final", "compressai"))
    assert meta["model_name"] == MODEL and meta["kind"] == "iframe" and meta["finished"] is True


def test_the_final_loads_through_the_registry_and_really_codes_a_frame(trained, synthetic_clips):
    from dcvc_bench.data.video import read_frames
    from dcvc_bench.models.iframe import build_iframe_codec

    final = iframe_ckpt(trained / "ck", "hp", "final", "compressai")
    codec = build_iframe_codec(_spec(final))
    state = load_iframe_checkpoint(final)["state_dict"]
    loaded = codec.model.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state if k in loaded), "not the trained weights"
    assert not codec.random_weights
    frame = read_frames(sorted(synthetic_clips.glob("*.mp4"))[0], 0, 1)[0]
    x = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None].float() / 255
    data = codec.encode(x)
    y = codec.decode(data, (x.shape[2], x.shape[3]))
    assert y.shape == x.shape and len(data) > 0
    est = codec.estimate(x)
    assert torch.allclose(y, est.x_hat, atol=1e-5)  # a hyperprior's forward is its real decode
    assert 8 * len(data) == pytest.approx(float(est.bits[0]), rel=0.5, abs=200)


def test_a_pframe_stage_1_step_runs_on_the_trained_hyperprior(trained, synthetic_clips, tmp_path):
    final = iframe_ckpt(trained / "ck", "hp", "final", "compressai")
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1, steps=2)
    at = argv.index("--i_frame_type")
    argv[at: at + 2] = ["--i_frame_type", "compressai", "--i_frame_model_name", MODEL, "--i_frame_quality",
                        str(QUALITY), "--no-i_frame_pretrained", "--i_frame_checkpoint", str(final)]
    res = run_subprocess(argv, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "random weights" not in res.stderr


def test_it_runs_under_accelerate_launch_as_the_runner_starts_it(synthetic_clips, tmp_path):
    import os
    import subprocess
    import sys

    argv = iframe_argv(synthetic_clips, tmp_path / "ck", tmp_path / "a.jsonl", type_="compressai", steps=1,
                       eval_=False, extra=["--i_frame_quality", "1"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--cpu",
                          "-m", "dcvc_bench.train.iframe", *argv], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert events_of(tmp_path / "a.jsonl", "step_end")[-1]["status"] == "done"
    assert iframe_ckpt(tmp_path / "ck", "train", "final", "compressai").is_file()
