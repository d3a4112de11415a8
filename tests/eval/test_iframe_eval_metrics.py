"""`dcvc-bench eval-iframe` shows LPIPS and FID: "unavailable: place FILE in DIR" without
their weights, real values from test-made weight files of the right format, and FID
refused (naming the minimum) on fewer frames than it needs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app

from test_fid import random_inception_state_dict

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """One 64×64 synthetic clip of 66 frames: enough for FID with 64-d features (65)."""
    from dcvc_bench.data.synth import write_synthetic_clips

    folder = tmp_path_factory.mktemp("long_clip")
    (path,) = write_synthetic_clips(folder, videos=1, frames=66, size=(64, 64), seed=5)
    return path


@pytest.fixture(scope="module")
def weights_home(tmp_path_factory):
    """A TORCH_HOME holding test-made LPIPS backbone (torchvision's AlexNet, random) and FID
    Inception (torch-fidelity's InceptionV3, random) files under the names they are looked for."""
    from torchvision.models import alexnet

    from dcvc_bench.eval.fid import inception_file_name

    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(alexnet(weights=None).state_dict(), folder / "alexnet-owt-7be5be79.pth")
    torch.save(random_inception_state_dict(), folder / inception_file_name())
    return home


def invoke(clip, out, *extra):
    return runner.invoke(app, ["eval-iframe", "--type", "opencv", "--quality", "30,90", "--videos", str(clip),
                               "--device", "cpu", "--json", str(out), *map(str, extra)])


def test_without_weights_lpips_and_fid_say_which_file_to_place_where(long_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    out = tmp_path / "a.json"
    result = invoke(long_clip, out, "--frames", "2")
    assert result.exit_code == 0, (result.output, result.exception)
    text = " ".join(result.stdout.split())  # rich may wrap long lines
    assert f"LPIPS unavailable: place alexnet-owt-7be5be79.pth in {folder} " in text
    assert f"FID unavailable: place weights-inception-2015-12-05-6726825d.pth in {folder} " in text
    doc = json.loads(out.read_text())
    assert not doc["lpips"]["available"] and not doc["fid"]["available"]
    for point in doc["results"]:
        assert point["overall"]["lpips"] is None and point["overall"]["fid"] is None
        assert point["overall"]["fid_reason"].startswith("FID unavailable: place ")


def test_with_local_weight_files_lpips_and_fid_are_real_values(long_clip, weights_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(weights_home))
    out = tmp_path / "b.json"
    result = invoke(long_clip, out, "--frames", "66", "--fid-dims", "64")
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["lpips"]["available"] and doc["fid"]["available"] and doc["fid"]["min_frames"] == 65
    low, high = doc["results"]
    for point in (low, high):
        o = point["overall"]
        assert 0 < o["lpips"] < 1 and math.isfinite(o["fid"]) and o["fid"] > 0 and o["fid_reason"] is None
    assert low["overall"]["fid"] > high["overall"]["fid"]  # JPEG q30 is further from the originals than q90
    assert [p["fid"] for p in doc["rd"]["curves"][0]["points"]] == [low["overall"]["fid"], high["overall"]["fid"]]
    assert f"{low['overall']['fid']:.3f}" in result.stdout


def test_fid_on_fewer_frames_than_it_needs_is_refused_naming_the_minimum(long_clip, weights_home, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(weights_home))
    out = tmp_path / "c.json"
    result = invoke(long_clip, out, "--frames", "3")
    assert result.exit_code == 0, (result.output, result.exception)
    line = ("FID unavailable: at most 3 frames evaluated; FID with 2048-d features needs at least 2049 "
            "(more --frames or --videos clips)")
    assert line in " ".join(result.stdout.split())
    doc = json.loads(out.read_text())
    assert doc["fid"]["reason"] == line and all(p["overall"]["fid"] is None for p in doc["results"])
    assert doc["lpips"]["available"] and all(p["overall"]["lpips"] is not None for p in doc["results"])
