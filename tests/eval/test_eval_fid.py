"""`dcvc-bench eval` (video) with SSIM and FID: one FID per RD point over all its decoded
frames against the originals, a real finite value with a test-made Inception weights file
(64-d features: 65 frames needed), "FID unavailable: ..." naming the file and folder
without it or the frames it needs with too few, and an explicit ``--fid`` that cannot be
honoured refused in one line (exit 2) before anything is evaluated."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app

from test_eval_estimate import make_run
from test_fid import random_inception_state_dict

runner = CliRunner()
FRAMES = 66  # > 64 + 1: enough for 64-d FID


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """Two λ tracks, one 64×64 validation clip of 66 frames."""
    return make_run(tmp_path_factory.mktemp("runs"), frames=FRAMES, size=(64, 64))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs_short"), frames=6, size=(64, 64))


@pytest.fixture(scope="module")
def inception_home(tmp_path_factory):
    """A TORCH_HOME holding torch-fidelity's InceptionV3 (random, the right format) under
    the name FID looks for; no LPIPS weights."""
    from dcvc_bench.eval.fid import inception_file_name

    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(random_inception_state_dict(), folder / inception_file_name())
    return home


def invoke(run, *extra):
    return runner.invoke(app, ["eval", "--checkpoint", str(run), "--device", "cpu", *map(str, extra)])


def one_line_error(result) -> str:
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_fid_per_point_is_real_and_finite_with_local_weights(long_run, inception_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(inception_home))
    out, table = tmp_path / "e.json", tmp_path / "e.csv"
    result = invoke(long_run, "--frames", FRAMES, "--intra-period", 1, "--fid-dims", 64, "--json", out, "--csv", table)
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["fid"]["available"] and doc["fid"]["reason"] is None
    assert (doc["fid"]["dims"], doc["fid"]["min_frames"]) == (64, 65)
    assert doc["fid"]["weights"].startswith(str(inception_home))
    assert "fid" in doc["conventions"] and "ssim" in doc["conventions"]
    fids = {}
    for point in doc["results"]:
        o = point["overall"]
        assert o["frames"] == FRAMES and o["fid_reason"] is None
        assert math.isfinite(o["fid"]) and o["fid"] > 0, o["fid"]
        assert 0 < o["ssim"] < 1 and 0 < o["ms_ssim"] < 1
        (clip,) = point["clips"].values()
        assert clip["ssim"] == pytest.approx(sum(f["ssim"] for f in clip["per_frame"]) / FRAMES)
        fids[point["id"]] = o["fid"]
        assert f"{o['fid']:.3f}" in result.stdout and f"{o['ssim']:.4f}" in result.stdout
    assert len(set(fids.values())) == 2  # two codecs, two distances
    points = {p["label"]: p for c in doc["rd"]["curves"] for p in c["points"]}
    assert {k: p["fid"] for k, p in points.items()} == fids
    assert all(p["ssim"] == r["overall"]["ssim"] for r in doc["results"] for p in [points[r["id"]]])
    assert doc["clips"][0]["ssim"] == "SSIM"
    rows = {(r["codec"], r["clip"]): r for r in csv.DictReader(table.open())}
    for codec, value in fids.items():
        assert float(rows[(codec, "overall")]["fid"]) == pytest.approx(value)
        assert float(rows[(codec, "synth_000")]["ssim"]) > 0 and rows[(codec, "synth_000")]["fid"] == ""
    # the run folder's RD document (the TUI's RD view) carries them too
    rd = json.loads((long_run / "eval" / "rd.json").read_text())
    assert {p["label"]: p["fid"] for c in rd["curves"] for p in c["points"]} == fids


def test_without_weights_fid_is_unavailable_naming_file_and_folder(short_run, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    out = tmp_path / "n.json"
    result = invoke(short_run, "--frames", 3, "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    line = f"FID unavailable: place weights-inception-2015-12-05-6726825d.pth in {folder} "
    assert line in " ".join(result.stdout.split())
    doc = json.loads(out.read_text())
    assert not doc["fid"]["available"] and doc["fid"]["reason"].startswith(line)
    for point in doc["results"]:
        assert point["overall"]["fid"] is None and point["overall"]["fid_reason"] == doc["fid"]["reason"]
        assert 0 < point["overall"]["ssim"] < 1
    assert all(p["fid"] is None for c in doc["rd"]["curves"] for p in c["points"])


def test_too_few_frames_give_no_number_and_say_how_many_are_needed(short_run, inception_home, tmp_path, monkeypatch):
    """Asked for more frames than the clip holds: the clip's real count decides (6 < 65)."""
    monkeypatch.setenv("TORCH_HOME", str(inception_home))
    out = tmp_path / "s.json"
    result = invoke(short_run, "--frames", 100, "--fid-dims", 64, "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    line = ("FID unavailable: 6 frames evaluated; FID with 64-d features needs at least 65 "
            "(more --frames or --videos clips)")
    assert line in " ".join(result.stdout.split())
    doc = json.loads(out.read_text())
    assert not doc["fid"]["available"] and doc["fid"]["reason"] == line
    assert all(r["overall"]["fid"] is None and r["overall"]["fid_reason"] == line for r in doc["results"])


@pytest.mark.parametrize("args, needle", [
    (("--frames", 3), "--fid: FID unavailable: place weights-inception-2015-12-05-6726825d.pth in "),
    (("--frames", 3, "--fid-weights", "nowhere.pth"),
     "--fid: FID unavailable: --fid-weights nowhere.pth: no such file"),
])
def test_explicit_fid_without_weights_is_one_line_exit_2(short_run, tmp_path, monkeypatch, args, needle):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    out = tmp_path / "x.json"
    line = one_line_error(invoke(short_run, "--fid", *args, "--json", out))
    assert needle in line, line
    assert not out.exists()


@pytest.mark.parametrize("frames, needle", [
    (3, "at most 3 frames evaluated; FID with 64-d features needs at least 65"),
    (100, "6 frames evaluated; FID with 64-d features needs at least 65"),  # the clip is shorter than asked
])
def test_explicit_fid_on_too_few_frames_is_one_line_exit_2(short_run, inception_home, tmp_path, monkeypatch,
                                                            frames, needle):
    monkeypatch.setenv("TORCH_HOME", str(inception_home))
    before = sorted((short_run / "eval").glob("*")) if (short_run / "eval").exists() else []
    line = one_line_error(invoke(short_run, "--fid", "--fid-dims", 64, "--frames", frames))
    assert line == f"error: --fid: FID unavailable: {needle} (more --frames or --videos clips)"
    after = sorted((short_run / "eval").glob("*")) if (short_run / "eval").exists() else []
    assert after == before  # nothing evaluated, nothing written


def test_no_fid_skips_it_and_says_so(short_run, inception_home, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(inception_home))
    out = tmp_path / "o.json"
    result = invoke(short_run, "--no-fid", "--frames", 2, "--json", out)
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["fid"]["reason"] == "FID not computed (--no-fid)"
    assert all(r["overall"]["fid"] is None for r in doc["results"])
