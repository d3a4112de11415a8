"""The I-frame training step on a real tiny RVQ-VQGAN (f=2, 8 layers, K=16), real clips and
real Accelerate: the progressive schedule (L=2, then L=4 with the first 2 frozen), the GAN
switch at --disc_start, the events, and the final as a codec of the P-frame step."""

from __future__ import annotations

import json

import pytest
import torch

from dcvc_bench.checkpoint_io import load_iframe_checkpoint
from dcvc_bench.checkpoints import read_meta
from dcvc_bench.events import IFRAME_EVENT_FIELDS, read_events
from dcvc_bench.models.iframe.vq import load_vq_checkpoint
from dcvc_bench.models.iframe.vq_config import VQConfig

from train_helpers import (
    TINY_RVQ,
    events_of,
    iframe_argv,
    iframe_ckpt,
    run_iframe_in_process,
    run_iframe_subprocess,
    run_subprocess,
    step_argv,
)

DISC_START = 3  # of 6 iterations (2 epochs of 3)


@pytest.fixture(scope="module")
def p2(tmp_path_factory, synthetic_clips):
    """A finished progressive first step: layers 0-1 of 8, GAN from iteration 3."""
    root = tmp_path_factory.mktemp("p2")
    argv = iframe_argv(synthetic_clips, root / "ck", root / "p2.jsonl", tag="p2", epochs=2, steps=3,
                       extra=["--rvq_train_layers", "2", "--disc_start", str(DISC_START)])
    assert run_iframe_in_process(argv) == 0
    return root


@pytest.fixture(scope="module")
def p4(p2, tmp_path_factory, synthetic_clips):
    """The next progressive step: layers 0-3, the first 2 (and the encoder) frozen."""
    root = tmp_path_factory.mktemp("p4")
    argv = iframe_argv(synthetic_clips, root / "ck", root / "p4.jsonl", tag="p4", epochs=1, steps=3,
                       extra=["--rvq_train_layers", "4", "--rvq_frozen_layers", "2", "--disc_start", "0",
                              "--load_pretrained", str(iframe_ckpt(p2 / "ck", "p2", "final"))])
    assert run_iframe_in_process(argv) == 0
    return root


def test_events_follow_the_iframe_schema_and_the_gan_starts_at_disc_start(p2):
    events = read_events(p2 / "p2.jsonl")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "step_start" and kinds[-1] == "step_end" and events[-1]["status"] == "done"
    for e in events:
        assert set(IFRAME_EVENT_FIELDS[e["event"]]) <= set(e), e
    start = events[0]
    assert start["kind"] == "iframe" and start["i_frame_type"] == "rvq" and start["stage"] is None
    assert start["lr_reset"] is False and start["rvq_train_layers"] == 2
    train = events_of(p2 / "p2.jsonl", "train")
    assert train[-1]["iteration"] == 6
    before = [e for e in train if e["iteration"] <= DISC_START]  # every iteration of its window < 3
    after = [e for prev, e in zip(train, train[1:]) if prev["iteration"] >= DISC_START]
    assert before and after
    for e in before:
        assert e["d_loss"] is None and e["g_loss"] is None and e["disc_weight"] is None and e["disc_on"] is False, e
    for e in after:
        assert e["d_loss"] is not None and e["g_loss"] is not None and e["disc_on"] is True, e
        assert 0 <= e["disc_weight"] <= 0.8 * 1e4
    for e in train:
        assert e["rec_loss"] > 0 and e["codebook_loss"] >= 0 and e["perceptual_loss"] is None
        assert e["bpp"] == pytest.approx(2 * 4 / 4)  # uniform at L=2: 2 indices of log2 16 bits per 2×2 block
    books = events_of(p2 / "p2.jsonl", "codebook")
    assert [b["epoch"] for b in books] == [1, 2]
    for b in books:
        assert [layer["layer"] for layer in b["layers"]] == [0, 1]
        assert b["layers"][0]["usage"] > 0  # layer 1 may go unused in an epoch: quantize dropout
        for layer in b["layers"]:
            assert 0 <= layer["usage"] <= 100 and layer["dead"] == round(16 * (1 - layer["usage"] / 100))
            assert (layer["perplexity"] is None) == (layer["usage"] == 0)
            assert layer["perplexity"] is None or 1 <= layer["perplexity"] <= 16


def test_the_final_is_a_vq_codec_with_counts_at_the_trained_depth(p2):
    path = iframe_ckpt(p2 / "ck", "p2", "final")
    model, tables = load_vq_checkpoint(path, VQConfig.from_json(TINY_RVQ))  # a valid VQ checkpoint
    assert model.depth == 8
    state = load_iframe_checkpoint(path)
    counts = state["index_counts"]
    assert counts[:2].sum(dim=1).min() > 0 and counts[2:].sum() == 0
    assert state["finished"] is True and state["epoch"] == 2 and state["iteration"] == 6
    assert state["rvq_train_layers"] == 2 and state["perceptual"] is False
    for key in ("optimizer_state_dict", "disc_state_dict", "disc_optimizer_state_dict", "rng", "best_loss"):
        assert key in state
    meta = read_meta(path)
    assert meta["kind"] == "iframe" and meta["step_id"] == "p2" and meta["i_frame_type"] == "rvq"
    assert meta["checkpoint_kind"] == "final" and meta["epoch"] == 2


def test_checkpoint_meta_rebuilds_an_iframe_sidecar(p2):
    from dcvc_bench.checkpoint_meta import sidecar_fields
    from dcvc_bench.checkpoints import content_meta

    path = iframe_ckpt(p2 / "ck", "p2", "latest")
    rebuilt = sidecar_fields(str(path))
    assert rebuilt == json.loads(json.dumps(content_meta(read_meta(path))))
    assert rebuilt["kind"] == "iframe" and rebuilt["checkpoint_kind"] == "latest"


def test_a_progressive_step_keeps_what_the_previous_one_trained_bit_identical(p2, p4):
    before = load_iframe_checkpoint(iframe_ckpt(p2 / "ck", "p2", "final"))["state_dict"]
    after = load_iframe_checkpoint(iframe_ckpt(p4 / "ck", "p4", "final"))["state_dict"]
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv.", "quantize.layers.0.",
                                                 "quantize.layers.1."))]
    assert any(".embed" in k for k in frozen) and any(k.startswith("encoder.") for k in frozen)
    changed = [k for k in frozen if not torch.equal(before[k], after[k])]
    assert not changed, f"frozen tensors changed: {changed}"
    trained = [k for k in before if k.startswith(("decoder.", "quantize.layers.2._codebook.embed",
                                                  "quantize.layers.3._codebook.embed"))
               and before[k].dtype.is_floating_point]
    assert all(k in after for k in trained)
    assert any(not torch.equal(before[k], after[k]) for k in trained if k.startswith("decoder."))
    assert not torch.equal(before["quantize.layers.2._codebook.embed"], after["quantize.layers.2._codebook.embed"])
    start = events_of(p4 / "p4.jsonl", "step_start")[0]
    assert start["start_mode"] == "weights_only" and start["rvq_frozen_layers"] == 2


def test_per_depth_evaluation_rises_in_rate_with_depth(p4):
    ev = events_of(p4 / "p4.jsonl", "eval")[-1]
    depths = ev["depths"]
    assert [d["layers"] for d in depths] == [2, 4]
    assert depths[0]["bpp_uniform"] < depths[1]["bpp_uniform"]
    assert depths[0]["bpp_entropy"] <= depths[1]["bpp_entropy"]
    assert ev["bpp"] == depths[-1]["bpp_uniform"] and ev["psnr"] == depths[-1]["psnr"]
    assert all(d["bpp_entropy"] <= d["bpp_uniform"] * 1.01 for d in depths)


def test_a_pframe_stage_1_step_runs_on_top_of_the_final(p4, synthetic_clips, tmp_path):
    final = iframe_ckpt(p4 / "ck", "p4", "final")
    argv = step_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", stage=1, steps=2)
    at = argv.index("--i_frame_type")
    argv[at: at + 2] = ["--i_frame_type", "rvq", "--vqgan_config", str(TINY_RVQ), "--vqgan_checkpoint", str(final),
                        "--rvq_layers", "4"]
    res = run_subprocess(argv, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert events_of(tmp_path / "e.jsonl", "step_end")[-1]["status"] == "done"


@pytest.mark.parametrize("extra, needle", [
    (["--rvq_train_layers", "9"], "--rvq_train_layers 9"),
    (["--rvq_frozen_layers", "2"], "--rvq_frozen_layers 2"),            # fresh: nothing trained to freeze
    (["--rvq_eval_layers", "2,6", "--rvq_train_layers", "4"], "--rvq_eval_layers"),
    (["--i_frame_model_name", "mbt2018-mean"], "--i_frame_model_name"),
    (["--crop_size", "16"], "--crop_size 16"),
    (["--step_tag", "P-2"], "--step_tag"),
])
def test_bad_input_is_one_line_and_exit_2(synthetic_clips, tmp_path, extra, needle):
    res = run_iframe_subprocess(iframe_argv(synthetic_clips, tmp_path / "ck", tmp_path / "e.jsonl", extra=extra),
                                timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [line for line in res.stderr.strip().splitlines() if not line.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert not (tmp_path / "ck").exists() or not list((tmp_path / "ck").iterdir())


def test_two_processes_under_ddp_train_the_gan_and_write_one_codec(synthetic_clips, tmp_path):
    """torch.distributed (gloo, 2 CPU processes): the adaptive weight reaches the decoder's
    last layer through the DDP wrapper, the codebooks' EMA and k-means synchronise, and only
    the main process evaluates and writes."""
    import os
    import subprocess
    import sys

    ev = tmp_path / "ddp.jsonl"
    argv = iframe_argv(synthetic_clips, tmp_path / "ck", ev, epochs=2, steps=2,
                       extra=["--disc_start", "1", "--rvq_train_layers", "4"])
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--standalone", "-m", "dcvc_bench.train.iframe", *argv],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    start = events_of(ev, "step_start")[0]
    assert start["processes"] == 2 and start["iters_per_epoch"] == 2
    assert [e["event"] for e in read_events(ev)].count("step_start") == 1  # one writer
    train = events_of(ev, "train")
    assert train[-1]["d_loss"] is not None and train[-1]["disc_weight"] > 0
    model, _ = load_vq_checkpoint(iframe_ckpt(tmp_path / "ck", "train", "final"), VQConfig.from_json(TINY_RVQ))
    assert model.codebooks_initialised()
