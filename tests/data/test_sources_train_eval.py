"""Issue 13's first Done-when: a .yuv 4:2:0 8-bit and a 10-bit file made with ffmpeg from
a generated clip, a PNG folder and a Vimeo-style septuplet tree with its lists each train
a step (the real tiny DCVC, real Accelerate, validation on the same source) and evaluate
(`dcvc-bench eval`, estimate mode, on the checkpoint written)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from data_helpers import decode_all
from yuv_helpers import make_yuv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import ckpt, run_in_process, step_argv  # noqa: E402

W, H = 96, 64


def _pngs(folder: Path, frames, pattern: str) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / pattern.format(i + 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def make_source(kind: str, clip: Path, root: Path) -> tuple[Path, list[str]]:
    """A folder of ``kind`` made from the generated clip, and the clip names eval reports."""
    root.mkdir()
    if kind in ("yuv8", "yuv10"):
        bits = int(kind[3:])
        make_yuv(clip, root / f"X_{W}x{H}_30fps_420_{bits}bit_YUV.yuv", bits)
        return root, [f"X_{W}x{H}_30fps_420_{bits}bit_YUV"]
    frames = decode_all(clip)
    if kind == "png":
        _pngs(root / "frames", frames, "{:05d}.png")
        return root / "frames", ["frames"]
    for seq in ("00001/0001", "00001/0002", "00002/0001"):
        _pngs(root / "sequences" / seq, frames[:7], "im{}.png")
    (root / "sep_trainlist.txt").write_text("00001/0001\n00002/0001\n")
    (root / "sep_testlist.txt").write_text("00001/0002\n")
    return root, ["00001_0002"]


@pytest.mark.parametrize("kind", ["yuv8", "yuv10", "png", "vimeo"])
def test_each_source_kind_trains_a_step_and_evaluates(kind, synthetic_clips, tmp_path):
    import torch

    torch.set_num_threads(1)  # tests/conftest.py gives the next test its count back
    source, names = make_source(kind, synthetic_clips / "synth_000.mp4", tmp_path / "src")
    argv = step_argv(source, tmp_path / "ck", tmp_path / "events.jsonl", stage=1, gop=2, eval_=True)
    assert run_in_process(argv) == 0
    checkpoint = ckpt(tmp_path / "ck", 1, "final")
    assert checkpoint.is_file()
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "eval" for e in events), [e["event"] for e in events]

    out = tmp_path / "eval.json"
    videos = source / f"{names[0]}.yuv" if kind == "yuv10" else source  # --videos FILE as well as DIR
    result = CliRunner().invoke(app, ["eval", "--device", "cpu", "--checkpoint", str(checkpoint), "--videos",
                                      str(videos), "--frames", "3", "--json", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(out.read_text())
    assert doc["mode"] == "estimate"
    assert [(c["name"], c["width"], c["height"], c["frames"]) for c in doc["clips"]] == [(n, W, H, 3) for n in names]
    clip = doc["results"][0]["clips"][names[0]]
    assert clip["bpp"] > 0 and 0 < clip["psnr"] < 100
