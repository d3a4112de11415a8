"""Bad input around the VQ I-frame families, through the real trainer entry
(`python -m dcvc_bench.train`): each one line `error: ...` naming what and what to do, exit 2.

- a VQ checkpoint given as ``--i_frame_checkpoint`` of the compressai family;
- a ``--vqgan_config`` with an unknown or a missing key;
- a checkpoint that does not fit its config;
- ``--rvq_layers`` above the trained depth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from dcvc_bench.curriculum.iframe_spec import CompressAISpec
from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe import build_iframe_codec, iframe_weights_type
from dcvc_bench.models.iframe.vq import RVQCodec, fit_index_counts, save_vq_checkpoint
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR

TINY_RVQ = CONFIG_DIR / "tiny_rvq_f16.json"


@pytest.fixture(scope="module")
def rvq_checkpoint(tmp_path_factory):
    """An 8-layer RVQ checkpoint (untrained: codebooks initialised, random weights)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codec = RVQCodec.untrained(TINY_RVQ)
        path = tmp_path_factory.mktemp("vq") / "rvq.pth"
        save_vq_checkpoint(path, codec.model, fit_index_counts(codec.model, [torch.rand(2, 3, 64, 64)]))
        return path
    finally:
        torch.set_num_threads(before)


def train(data, tmp_path, *iframe: str) -> subprocess.CompletedProcess:
    argv = ["--train_video_dir", str(data), "--checkpoint_dir", str(tmp_path / "ck"), "--events_file",
            str(tmp_path / "e.jsonl"), "--model_preset", "tiny", "--lambda_value", "256", "--quality_index", "1",
            "--stage", "1", "--gop_size", "2", "--epochs", "1", "--steps_per_epoch", "1", "--batch_size", "1",
            "--crop_size", "64", "--num_workers", "0", "--skip_eval", *iframe]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dcvc_bench.train", *argv], env=env, capture_output=True,
                          text=True, timeout=180)


def one_line(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def config_with(tmp_path, **changes) -> str:
    data = json.loads(TINY_RVQ.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_registry_refuses_a_vq_checkpoint_as_compressai_weights(rvq_checkpoint):
    assert iframe_weights_type(rvq_checkpoint) == "rvq"
    with pytest.raises(UserError) as exc:
        build_iframe_codec(CompressAISpec(model_name="bmshj2018-factorized", quality=1,
                                          checkpoint=str(rvq_checkpoint)))
    text = str(exc.value)
    assert "\n" not in text and f"{rvq_checkpoint} is a VQ checkpoint (rvq)" in text
    assert f"use --i_frame_type rvq --vqgan_config <its JSON config> --vqgan_checkpoint {rvq_checkpoint}" in text


def test_a_training_checkpoint_or_other_file_is_no_iframe_weights_file(tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save({"model_state_dict": {"a": torch.zeros(1)}}, plain)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert iframe_weights_type(plain) is None and iframe_weights_type(junk) is None
    assert iframe_weights_type(tmp_path / "absent.pth") is None


@pytest.mark.slow
def test_trainer_refuses_vq_mistakes_in_one_line(synthetic_clips, rvq_checkpoint, tmp_path):
    ckpt = str(rvq_checkpoint)
    one_line(train(synthetic_clips, tmp_path, "--i_frame_type", "compressai", "--i_frame_model_name",
                   "bmshj2018-factorized", "--i_frame_quality", "1", "--i_frame_checkpoint", ckpt),
             "is a VQ checkpoint (rvq)", "--i_frame_type rvq", "--vqgan_checkpoint")
    rvq = ["--i_frame_type", "rvq", "--vqgan_checkpoint", ckpt]
    one_line(train(synthetic_clips, tmp_path, *rvq, "--vqgan_config", config_with(tmp_path, chanels=8)), "'chanels'")
    one_line(train(synthetic_clips, tmp_path, *rvq, "--vqgan_config", config_with(tmp_path, ch=None)), "'ch'")
    one_line(train(synthetic_clips, tmp_path, *rvq, "--vqgan_config", config_with(tmp_path, ch=16)),
             "does not fit the config", "'ch'")
    one_line(train(synthetic_clips, tmp_path, *rvq, "--vqgan_config", str(TINY_RVQ), "--rvq_layers", "9"),
             "layers 9", "trained with 8")
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())
