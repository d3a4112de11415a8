"""The LPIPS term of the VQ step: off with one warning when its weights are absent (and
recorded off in the events and the checkpoint), on with a weight file of the right format
(torchvision's AlexNet state dict, what eval's LPIPS loader reads; random weights here)."""

from __future__ import annotations

import pytest
import torch

from dcvc_bench.checkpoint_io import load_iframe_checkpoint

from train_helpers import events_of, iframe_argv, iframe_ckpt, run_iframe_in_process


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    from dcvc_bench.compat import ensure_torchvision

    ensure_torchvision()
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "my-alexnet.pth"
    torch.save({f"features.{k}": v for k, v in alexnet().features.state_dict().items()}, path)
    return path


def _run(clips, tmp_path, capsys, extra):
    argv = iframe_argv(clips, tmp_path / "ck", tmp_path / "e.jsonl", steps=2, extra=extra)
    assert run_iframe_in_process(argv) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    return warnings, events_of(tmp_path / "e.jsonl", "step_start")[0], events_of(tmp_path / "e.jsonl", "train"), \
        load_iframe_checkpoint(iframe_ckpt(tmp_path / "ck", "train", "final"))


def test_absent_weights_turn_the_term_off_with_one_warning(synthetic_clips, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "alexnet-owt-7be5be79.pth"
    warnings, start, train, final = _run(synthetic_clips, tmp_path, capsys, ["--lpips_weights", str(missing)])
    assert len(warnings) == 1 and "perceptual (LPIPS) term is off" in warnings[0] and str(missing) in warnings[0]
    assert start["perceptual"]["on"] is False and str(missing) in start["perceptual"]["reason"]
    assert train and all(e["perceptual_loss"] is None for e in train)
    assert final["perceptual"] is False and final["perceptual_record"]["on"] is False


def test_a_weight_file_of_the_right_format_turns_it_on(synthetic_clips, tmp_path, capsys, alexnet_file):
    hub = torch.hub.get_dir()
    warnings, start, train, final = _run(synthetic_clips, tmp_path, capsys, ["--lpips_weights", str(alexnet_file)])
    assert warnings == []
    assert start["perceptual"] == {"on": True, "weights": str(alexnet_file), "reason": None}
    assert train and all(e["perceptual_loss"] is not None and e["perceptual_loss"] > 0 for e in train)
    assert all(e["loss"] > e["rec_loss"] for e in train)
    assert final["perceptual"] is True
    assert torch.hub.get_dir() == hub  # eval's loader was pointed at the file for the load only


def test_a_file_of_the_wrong_format_is_off_with_the_loaders_reason(synthetic_clips, tmp_path, capsys):
    bad = tmp_path / "not-alexnet.pth"
    torch.save({"weight": torch.zeros(3)}, bad)
    warnings, start, train, final = _run(synthetic_clips, tmp_path, capsys, ["--lpips_weights", str(bad)])
    assert len(warnings) == 1 and "not a torchvision AlexNet state dict" in warnings[0]
    assert final["perceptual"] is False
