"""`dcvc-bench eval` in estimation mode on a run folder of tiny checkpoints: per-clip
figures on a clip that is not a multiple of 64, files for the TUI, LPIPS only from real
weights, EMA weights, the default run, and agreement with training's evaluate_clips."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.checkpoints import checkpoint_path
from dcvc_bench.cli import app
from dcvc_bench.checkpoint_io import save_checkpoint

LAMBDAS = ((256.0, 1), (2048.0, 4))
SMOKE = Path(__file__).resolve().parents[2] / "dcvc_bench" / "curricula" / "smoke.toml"
runner = CliRunner()


def make_run(root: Path, name: str = "demo", *, frames: int = 6, size: tuple[int, int] = (96, 64),
             ema_shift: float = 0.0, with_ema: bool = True, i_frame: dict | None = None) -> Path:
    """A run folder as `dcvc-bench run` leaves it: frozen curriculum with two λ tracks,
    synthetic validation clips in data/val, and a stage-4 ``final`` checkpoint per track
    (freshly initialised tiny DCVC; EMA shadow = weights + ``ema_shift``; ``i_frame``: the
    checkpoints' I-frame record, by default OpenCV JPEG at a quality per track)."""
    from dcvc_bench.data.synth import write_synthetic_clips
    from dcvc_bench.models.video_net import DCVC

    run = root / name
    run.mkdir(parents=True)
    text = SMOKE.read_text().replace('name = "smoke"', f'name = "{name}"')
    text = text.replace("[[tracks]]\nlambda = 2048\nquality_index = 4\n",
                        "".join(f"[[tracks]]\nlambda = {int(lam)}\nquality_index = {q}\n\n" for lam, q in LAMBDAS))
    (run / "curriculum.toml").write_text(text)
    write_synthetic_clips(run / "data" / "val", videos=1, frames=frames, size=size, seed=3)
    for i, (lam, q) in enumerate(LAMBDAS):
        torch.manual_seed(i)
        net = DCVC("tiny")
        shadow = {n: p.detach().clone() + ema_shift for n, p in net.named_parameters()}
        state = {"epoch": 1, "epochs": 1, "model_state_dict": net.state_dict(), "optimizer_state_dict": {},
                 "loss": 1.0, "best_loss": 1.0, "global_best_loss": 1.0, "stage": 4, "quality_index": q,
                 "lambda_value": lam, "scheduler_state_dict": None, "is_finetuning": False, "gop_size": 3,
                 "step_id": "s4g3", "rng_state": {}, "model_preset": "tiny", "kind": "final", "finished": True,
                 "ema_state_dict": {"decay": 0.99, "num_updates": 3, "shadow": shadow} if with_ema else None,
                 # the I-frame record as trainers wrote it before the I-frame spec (still loads)
                 "i_frame": i_frame or {"type": "opencv", "model_name": "jpeg", "quality": 60 + 30 * i,
                                        "pretrained": False, "checkpoint": None}}
        save_checkpoint(checkpoint_path(run / "checkpoints" / f"l{int(lam)}", lam, q, 4, "final"), state)
    return run


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny frames: one intra-op thread is faster, and much faster on a shared 2-core
    machine where a second spinning thread competes with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"), ema_shift=0.01)


@pytest.fixture
def no_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _invoke(*args: str):
    result = runner.invoke(app, ["eval", "--device", "cpu", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_estimate_on_a_non_multiple_of_64_clip_reports_per_clip_and_writes_json_csv(run, tmp_path, no_lpips_weights):
    out_json, out_csv = tmp_path / "e.json", tmp_path / "e.csv"
    result = _invoke("--checkpoint", str(run), "--json", str(out_json), "--csv", str(out_csv), "--intra-period", "4",
                     "--frames", "5")
    doc = json.loads(out_json.read_text())
    assert doc["format"] == "dcvc-bench-eval" and doc["mode"] == "estimate"
    assert doc["clips"] == [{**doc["clips"][0], "name": "synth_000", "width": 96, "height": 64, "frames": 5}]
    assert doc["clips"][0]["ms_ssim"] == "MS-SSIM (3 scales)"  # 64 px is too small for 5 scales
    assert [r["id"] for r in doc["results"]] == ["l256", "l2048"]  # tracks in order of λ
    for r in doc["results"]:
        assert r["kind"] == "learned" and r["bits"] == "estimated" and r["curve"] == "demo"
        assert r["source"]["stage"] == 4 and r["source"]["checkpoint_kind"] == "final"
        clip = r["clips"]["synth_000"]
        assert clip["bpp"] > 0 and 0 < clip["psnr"] < 100 and 0 < clip["ms_ssim"] <= 1
        assert clip["lpips"] is None
        assert [f["kind"] for f in clip["per_frame"]] == ["I", "P", "P", "P", "I"]
        assert clip["i_frame"]["count"] == 2 and clip["p_frame"]["count"] == 3
        assert [p["index"] for p in clip["p_first3"]] == [1, 2, 3]
        # BPP is all bits over the ORIGINAL 96x64 pixels, never the padded 128x64
        assert clip["bpp"] == pytest.approx(sum(f["bits"] for f in clip["per_frame"]) / (5 * 96 * 64))
        assert clip["psnr"] == pytest.approx(sum(f["psnr"] for f in clip["per_frame"]) / 5)
        assert r["overall"]["bpp"] == pytest.approx(clip["bpp"])
        assert clip["enc_ms_per_frame"] is None  # no timing in estimation mode
    rows = list(csv.DictReader(out_csv.open()))
    assert [(r["codec"], r["clip"]) for r in rows] == [("l256", "synth_000"), ("l256", "overall"),
                                                       ("l2048", "synth_000"), ("l2048", "overall")]
    assert float(rows[0]["bpp"]) == pytest.approx(doc["results"][0]["clips"]["synth_000"]["bpp"])
    assert rows[0]["lpips"] == "" and rows[0]["ms_ssim_label"] == "MS-SSIM (3 scales)"
    # LPIPS unavailable, with the file and folder it needs, in JSON and on screen
    assert doc["lpips"]["available"] is False
    assert "alexnet" in doc["lpips"]["reason"] and str(no_lpips_weights) in doc["lpips"]["reason"]
    flat = " ".join(result.stdout.split())
    assert "LPIPS unavailable" in flat and "ESTIMATED" in flat and "MS-SSIM (3 scales)" in flat
    # and into the run folder for the TUI
    latest = json.loads((run / "eval" / "latest.json").read_text())
    assert latest["results"][0]["overall"]["bpp"] == pytest.approx(doc["results"][0]["overall"]["bpp"])
    rd = json.loads((run / "eval" / "rd.json").read_text())
    assert rd["format"] == "dcvc-bench-rd" and [c["name"] for c in rd["curves"]] == ["demo"]
    assert [p["label"] for p in rd["curves"][0]["points"]] == sorted(
        ["l256", "l2048"], key=lambda k: next(r["overall"]["bpp"] for r in doc["results"] if r["id"] == k))
    assert (run / "eval" / "rd.png").read_bytes()[:4] == b"\x89PNG"


def test_estimate_matches_training_evaluate_clips(run):
    """The eval loop (uint8 frames, LPIPS hook) gives training's evaluate_clips numbers."""
    from dcvc_bench.codec.video import load_codec
    from dcvc_bench.eval.estimate import evaluate_clips
    from dcvc_bench.eval.evaluators import estimate_frames
    from dcvc_bench.eval.scoring import Scorer
    from dcvc_bench.eval.targets import Clip, load_clip

    path = next((run / "checkpoints" / "l2048").glob("*final.pth"))
    codec = load_codec(path)
    frames = load_clip(Clip("synth_000", run / "data" / "val" / "synth_000.mp4"), 5)
    ours = estimate_frames(codec, frames, 3, Scorer(torch.device("cpu")))
    theirs = evaluate_clips(codec.net, codec.iframe, [("synth_000", frames)], 4, 2048.0, 3, torch.device("cpu"))
    clip = theirs["clips"]["synth_000"]
    assert clip["frames"] == len(ours) == 5
    assert clip["bpp"] == pytest.approx(sum(f["bpp"] for f in ours) / 5, rel=1e-6)
    assert clip["psnr"] == pytest.approx(sum(f["psnr"] for f in ours) / 5, rel=1e-6)
    assert clip["ms_ssim"] == pytest.approx(sum(f["ms_ssim"] for f in ours) / 5, rel=1e-6)
    assert clip["ssim"] == pytest.approx(sum(f["ssim"] for f in ours) / 5, rel=1e-6)
    assert clip["i_frame"]["bpp"] == pytest.approx(sum(f["bpp"] for f in ours if f["kind"] == "I") / 2, rel=1e-6)


def test_lpips_is_reported_when_its_weights_are_present(run, tmp_path, monkeypatch):
    """Plumbing check with a stand-in AlexNet file (random weights saved to the hub
    cache): the column fills in, per frame and per clip."""
    from torchvision.models import alexnet

    from dcvc_bench.eval.metrics import lpips_weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    backbone = lpips_weight_files()["backbone"]
    backbone.parent.mkdir(parents=True)
    torch.save(alexnet().state_dict(), backbone)
    out = tmp_path / "e.json"
    _invoke("--checkpoint", str(next((run / "checkpoints" / "l256").glob("*.pth"))), "--frames", "2",
            "--json", str(out))
    doc = json.loads(out.read_text())
    assert doc["lpips"]["available"] is True
    clip = doc["results"][0]["clips"]["synth_000"]
    assert all(0 <= f["lpips"] for f in clip["per_frame"]) and clip["lpips"] is not None


def test_ema_uses_the_averaged_weights(run, tmp_path):
    plain, ema = tmp_path / "p.json", tmp_path / "e.json"
    target = str(run / "checkpoints" / "l256")
    _invoke("--checkpoint", target, "--frames", "3", "--json", str(plain))
    _invoke("--checkpoint", target, "--frames", "3", "--ema", "--json", str(ema))
    a, b = (json.loads(p.read_text())["results"][0] for p in (plain, ema))
    assert b["source"]["ema"] is True and b["curve"] == "demo (EMA)"
    assert a["overall"]["p_frame"]["bpp"] != b["overall"]["p_frame"]["bpp"]
    assert a["overall"]["i_frame"] == b["overall"]["i_frame"]  # the I-frame codec has no EMA


def test_no_argument_evaluates_the_most_recent_run(tmp_path, no_lpips_weights, monkeypatch):
    runs = tmp_path / "runs"
    old = make_run(runs, "old", frames=3)
    new = make_run(runs, "new", frames=3)
    stamp = time.time()
    (old / "ledger.json").write_text("{}")
    (new / "ledger.json").write_text("{}")
    os.utime(old / "ledger.json", (stamp, stamp))
    os.utime(new / "ledger.json", (stamp - 100, stamp - 100))
    monkeypatch.chdir(tmp_path)
    result = _invoke("--frames", "2")
    assert (old / "eval" / "latest.json").is_file() and not (new / "eval").exists()
    doc = json.loads((old / "eval" / "latest.json").read_text())
    assert doc["run"] == str(old.resolve()) or Path(doc["run"]).resolve() == old.resolve()
    assert {r["curve"] for r in doc["results"]} == {"old"} and "synth_000" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--frames", "0"], "--frames 0"),
    (["--intra-period", "0"], "--intra-period 0"),
    (["--checkpoint", "/nonexistent/x.pth"], "no such file or folder"),
    (["--qp", "22"], "add --baselines"),
    (["--anchor", "x999"], "no such curve"),
    (["--device", "tpu"], "--device"),
])
def test_bad_input_is_one_line_and_exit_2(run, args, message):
    argv = ["eval", "--frames", "2"] + (["--checkpoint", str(run)] if "--checkpoint" not in args else []) + args
    result = runner.invoke(app, argv)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0]


def test_ema_without_ema_weights_is_a_user_error(tmp_path):
    run = make_run(tmp_path, "noema", frames=2, with_ema=False)
    result = runner.invoke(app, ["eval", "--checkpoint", str(run), "--ema", "--device", "cpu"])
    assert result.exit_code == 2 and "EMA" in result.stderr


def test_a_track_without_final_or_best_is_skipped_with_a_note(tmp_path, no_lpips_weights):
    from dcvc_bench.eval.targets import pick_track_checkpoint, resolve_targets

    run = make_run(tmp_path, "partial", frames=2)
    (run / "checkpoints" / "l9999").mkdir()
    targets, notes = resolve_targets([run], tmp_path)
    assert [t.track for t in targets] == ["l256", "l2048"]
    assert notes == ["track l9999: no final or best checkpoint yet, skipped"]
    track = run / "checkpoints" / "l256"
    final = next(track.glob("*final.pth"))
    best_stage_2 = track / final.name.replace("stage_4_final", "stage_2_best")
    best_stage_2.write_bytes(final.read_bytes())
    assert pick_track_checkpoint(track) == final  # higher stage first
    final.rename(track / final.name.replace("final", "latest"))
    assert pick_track_checkpoint(track) == best_stage_2
