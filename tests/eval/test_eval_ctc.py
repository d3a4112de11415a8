"""DCVC's test conditions end to end: `eval --preset dcvc-ctc --color yuv420
--dataset-config C --baselines x265` on small generated YUV 4:2:0 files writes results in
DCVC's JSON format with the published VTM-17.0 anchor's keys; x265's per-plane PSNR equals
ffmpeg's own psnr filter on the same stream; BD-rates between two DCVC-format files equal
compare_bd_rate.py's method (bd-metric's BD_RATE with piecewise=1: PCHIP, 100 samples,
trapezoid) implemented here independently in numpy, per class and averaged.

Sizes: 96x64 (padded to 128x64 by the learned codec, scored on 96x64) and 128x64; 6 frames
per file, so `dcvc-ctc`'s 96 frames are "all of them" (each file is shorter) with intra
period 32 (one I-frame).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.cli import app

runner = CliRunner()
FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg")

FRAMES = 6
# class -> [(file name, lavfi source, (W, H))]
SEQUENCES = {
    "UVG": [("Alpha_96x64_30fps_420_8bit_YUV.yuv", "testsrc2", (96, 64)),
            ("Beta_96x64_30fps_420_8bit_YUV.yuv", "mandelbrot", (96, 64))],
    "HEVC_D": [("Gamma_128x64_30.yuv", "smptehdbars", (128, 64))],
}
QPS = "27,32,37,42"
#: The rate-point keys of microsoft/DCVC's anchors/vtm_17.0_yuv420_LB_allf_ip0.json (an
#: excerpt of the published file is tests/eval/fixtures/vtm_17.0_anchor_excerpt.json).
EXCERPT = Path(__file__).parent / "fixtures" / "vtm_17.0_anchor_excerpt.json"


def _anchor_keys() -> list[str]:
    data = json.loads(EXCERPT.read_text())
    keys = {tuple(rec) for cls in data.values() for seq in cls.values() for rec in seq.values()}
    assert len(keys) == 1
    return list(keys.pop())


def _train_tiny(data: Path, root: Path) -> Path:
    """A stage-4 step of the real trainer (tiny preset, a few steps) for the learned curve."""
    from accelerate.state import AcceleratorState

    from dcvc_bench.checkpoints import checkpoint_path
    from dcvc_bench.train.loop import main

    argv = ["--train_video_dir", str(data), "--checkpoint_dir", str(root), "--model_preset", "tiny",
            "--i_frame_type", "opencv", "--i_frame_codec", "jpeg", "--i_frame_quality", "90",
            "--lambda_value", "1024", "--quality_index", "1", "--stage", "4", "--gop_size", "2",
            "--epochs", "1", "--steps_per_epoch", "3", "--batch_size", "1", "--crop_size", "64",
            "--learning_rate", "5e-4", "--num_workers", "0", "--seed", "5", "--skip_eval"]
    AcceleratorState._reset_state(True)
    os.environ["ACCELERATE_USE_CPU"] = "true"
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return checkpoint_path(root, 1024.0, 1, 4, "final")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ctc")
    config = {"root_path": "seqs", "test_classes": {}}
    for cls, seqs in SEQUENCES.items():
        (root / "seqs" / cls).mkdir(parents=True)
        entries = {}
        for name, src, (w, h) in seqs:
            subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", f"{src}=size={w}x{h}:rate=30",
                            "-frames:v", str(FRAMES), "-pix_fmt", "yuv420p", "-f", "rawvideo",
                            str(root / "seqs" / cls / name)], check=True)
            entries[name] = {"width": w, "height": h, "frames": 600, "intra_period": -1}
        config["test_classes"][cls] = {"test": 1, "base_path": cls, "src_type": "yuv420", "sequences": entries}
    (root / "config.json").write_text(json.dumps(config, indent=1))
    return root


@pytest.fixture(scope="module")
def evaluated(dataset, tmp_path_factory) -> Path:
    """One evaluation: a tiny learned checkpoint, x265 and x264 at 4 QPs, YUV 4:2:0."""
    from dcvc_bench.data.synth import write_synthetic_clips

    train = tmp_path_factory.mktemp("ctc_train")
    write_synthetic_clips(train, videos=1, frames=4, size=(64, 64), seed=2)
    ckpt = _train_tiny(train, tmp_path_factory.mktemp("ctc_ckpt"))
    out = dataset / "out.json"
    result = runner.invoke(app, ["eval", "--preset", "dcvc-ctc", "--color", "yuv420", "--dataset-config",
                                 str(dataset / "config.json"), "--baselines", "x265,x264", "--qp", QPS,
                                 "--checkpoint", str(ckpt), "--device", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _planes(path: Path, w: int, h: int, dtype=np.uint8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype).reshape(-1, h * w * 3 // 2)
    return (raw[:, :h * w].reshape(-1, h, w), raw[:, h * w:h * w * 5 // 4].reshape(-1, h // 2, w // 2),
            raw[:, h * w * 5 // 4:].reshape(-1, h // 2, w // 2))


def test_results_in_dcvc_format_have_the_anchors_keys(evaluated, dataset):
    doc = json.loads(evaluated.read_text())
    assert doc["settings"]["preset"] == "dcvc-ctc" and doc["settings"]["color"] == "yuv420"
    keys = _anchor_keys()
    files = sorted(evaluated.parent.glob("out-*.dcvc.json"))
    assert {f.name for f in files} == {"out-x265.dcvc.json", "out-x264.dcvc.json", "out-learned.dcvc.json"}
    for f in files:
        data = json.loads(f.read_text())
        assert list(data) == list(SEQUENCES)
        for cls, seqs in SEQUENCES.items():
            assert list(data[cls]) == [name for name, _, _ in seqs]
            for name, _, (w, h) in seqs:
                for rate, rec in data[cls][name].items():
                    assert list(rec) == keys, (f.name, cls, name, rate)
                    # dcvc-ctc: 96 frames asked, each file has 6: all 6, one I-frame (intra period 32)
                    assert (rec["i_frame_num"], rec["p_frame_num"]) == (1, FRAMES - 1)
                    assert rec["frame_pixel_num"] == w * h  # padded for coding, scored unpadded
                    avg = (6 * rec["ave_all_frame_psnr_y"] + rec["ave_all_frame_psnr_u"]
                           + rec["ave_all_frame_psnr_v"]) / 8
                    assert rec["ave_all_frame_psnr"] == pytest.approx(avg, abs=1e-9)
                    assert (rec["ds_name"], rec["seq_name"]) == (cls, name)
    x265 = json.loads((evaluated.parent / "out-x265.dcvc.json").read_text())
    assert sorted(x265["UVG"]["Alpha_96x64_30fps_420_8bit_YUV.yuv"]) == ["027", "032", "037", "042"]
    # the learned codec's figures are its RGB output back in YUV 4:2:0, scored per plane
    learned = next(r for r in doc["results"] if r["kind"] == "learned")
    clip = learned["clips"]["Alpha_96x64_30fps_420_8bit_YUV.yuv"]
    assert {"psnr_y", "psnr_u", "psnr_v", "ms_ssim_y"} <= set(clip["per_frame"][0])
    assert doc["clips"][0]["width"] == 96 and doc["clips"][0]["dataset"] == "UVG"


def test_x265_plane_psnr_equals_ffmpegs_psnr_filter_on_the_same_stream(evaluated, dataset, tmp_path):
    """Re-run the recorded encode on the source planes (shifted to 10 bits here), check it is
    the same stream (SHA-256), decode it with ffmpeg, round to 8 bits, and let ffmpeg's psnr
    filter score it against the source .yuv: per-frame PSNR_Y/U/V averaged as DCVC does."""
    doc = json.loads(evaluated.read_text())
    dcvc = json.loads((evaluated.parent / "out-x265.dcvc.json").read_text())
    worst = 0.0
    for cls, seqs in SEQUENCES.items():
        for name, _, (w, h) in seqs:
            source = dataset / "seqs" / cls / name
            for qp in QPS.split(","):
                result = next(r for r in doc["results"] if r["id"] == f"x265 qp{qp}")
                clip = result["clips"][name]
                stream = tmp_path / "s.hevc"
                argv = [FFMPEG if a == clip["command"][0] else a for a in clip["command"]]
                argv[-1] = str(stream)
                ten_bit = (np.fromfile(source, np.uint8).astype("<u2") << 2).tobytes()
                subprocess.run(argv, input=ten_bit, check=True)
                import hashlib

                assert hashlib.sha256(stream.read_bytes()).hexdigest() == clip["sha256"]
                decoded = subprocess.run([FFMPEG, "-v", "error", "-i", str(stream), "-pix_fmt", "yuv420p10le",
                                          "-f", "rawvideo", "pipe:1"], capture_output=True, check=True).stdout
                eight = np.minimum((np.frombuffer(decoded, "<u2").astype(np.int32) + 2) >> 2, 255).astype(np.uint8)
                (tmp_path / "dec.yuv").write_bytes(eight.tobytes())
                meta = tmp_path / "psnr.txt"  # per-frame values with 6 decimals (stats_file prints 2)
                raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}"]
                subprocess.run([FFMPEG, "-v", "error", *raw, "-i", str(tmp_path / "dec.yuv"), *raw, "-i", str(source),
                                "-lavfi", f"psnr,metadata=mode=print:file={meta.name}", "-f", "null", "-"],
                               check=True, cwd=tmp_path)
                lines = meta.read_text().splitlines()
                rec = dcvc[cls][name][f"{int(qp):03d}"]
                for plane in "yuv":
                    values = [float(x.split("=")[1]) for x in lines if x.startswith(f"lavfi.psnr.psnr.{plane}=")]
                    assert len(values) == FRAMES
                    ffmpeg_mean = float(np.mean(values))
                    diff = abs(rec[f"ave_all_frame_psnr_{plane}"] - ffmpeg_mean)
                    worst = max(worst, diff)
                    assert diff < 0.01, (cls, name, qp, plane, rec[f"ave_all_frame_psnr_{plane}"], ffmpeg_mean)
    print(f"largest |PSNR difference| to ffmpeg's psnr filter: {worst:.2e} dB")


# ----------------------------------------------------------------- compare_bd_rate.py's method in numpy


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson (PCHIP) derivatives, the shape-preserving rule with the 3-point ends."""
    h = np.diff(x)
    m = np.diff(y) / h
    if len(x) == 2:
        return np.array([m[0], m[0]])
    d = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if m[k - 1] * m[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / m[k - 1] + w2 / m[k])

    def end(h0, h1, m0, m1):
        v = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        if np.sign(v) != np.sign(m0):
            return 0.0
        if np.sign(m0) != np.sign(m1) and abs(v) > abs(3 * m0):
            return 3 * m0
        return v

    d[0] = end(h[0], h[1], m[0], m[1])
    d[-1] = end(h[-1], h[-2], m[-1], m[-2])
    return d


def _pchip(x, y, t) -> np.ndarray:
    x, y, t = np.asarray(x, float), np.asarray(y, float), np.asarray(t, float)
    d = _pchip_slopes(x, y)
    k = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    s = (t - x[k]) / h
    h00, h10, h01, h11 = 2 * s**3 - 3 * s**2 + 1, s**3 - 2 * s**2 + s, -2 * s**3 + 3 * s**2, s**3 - s**2
    return h00 * y[k] + h10 * h * d[k] + h01 * y[k + 1] + h11 * h * d[k + 1]


def _bd_rate_piecewise(r1, p1, r2, p2) -> float:
    """BD_RATE(R1, PSNR1, R2, PSNR2, piecewise=1) as bd-metric defines it."""
    l1, l2 = np.log(r1), np.log(r2)
    lo, hi = max(min(p1), min(p2)), min(max(p1), max(p2))
    samples = np.linspace(lo, hi, 100)
    v1 = _pchip(np.sort(p1), np.sort(l1), samples)
    v2 = _pchip(np.sort(p2), np.sort(l2), samples)
    dx = samples[1] - samples[0]
    int1 = dx * (v1.sum() - (v1[0] + v1[-1]) / 2)
    int2 = dx * (v2.sum() - (v2[0] + v2[-1]) / 2)
    return (np.exp((int2 - int1) / (hi - lo)) - 1) * 100


def _class_curve(data: dict, cls: str) -> tuple[list[float], list[float]]:
    """compare_bd_rate.py's mean_over_sequence for all frames: frame-weighted per rate key."""
    bpp, psnr = [], []
    for rate in sorted(next(iter(data[cls].values()))):
        recs = [data[cls][s][rate] for s in data[cls]]
        n = [r["i_frame_num"] + r["p_frame_num"] for r in recs]
        bpp.append(sum(r["ave_all_frame_bpp"] * k for r, k in zip(recs, n)) / sum(n))
        psnr.append(sum(r["ave_all_frame_psnr"] * k for r, k in zip(recs, n)) / sum(n))
    return bpp, psnr


def _independent(anchor: dict, test: dict) -> tuple[dict[str, float], float]:
    per_class = {}
    for cls in anchor:
        ra, pa = _class_curve(anchor, cls)
        rt, pt = _class_curve(test, cls)
        per_class[cls] = _bd_rate_piecewise(ra, pa, rt, pt)
    return per_class, float(np.mean(list(per_class.values())))


def test_pchip_helper_matches_scipy():
    """The test's own PCHIP is the standard one (scipy's, which bd-metric calls)."""
    from scipy.interpolate import pchip_interpolate

    x, y = np.array([30.0, 32.5, 33.0, 37.0]), np.log([0.05, 0.1, 0.2, 0.45])
    t = np.linspace(30, 37, 50)
    assert np.allclose(_pchip(x, y, t), pchip_interpolate(x, y, t), atol=1e-12)


def test_bd_rate_between_two_dcvc_files_equals_compare_bd_rates_method(evaluated, dataset):
    from dcvc_bench.eval import dcvc_json

    x265_file, x264_file = evaluated.parent / "out-x265.dcvc.json", evaluated.parent / "out-x264.dcvc.json"
    anchor, test = json.loads(x265_file.read_text()), json.loads(x264_file.read_text())
    expected, expected_avg = _independent(anchor, test)
    # through the API
    got = dcvc_json.compare(dcvc_json.load(x265_file), dcvc_json.load(x264_file))
    for cls in SEQUENCES:
        assert got["classes"][cls]["bd_rate"] == pytest.approx(expected[cls], abs=0.01)
    assert got["average"] == pytest.approx(expected_avg, abs=0.01)
    # through `dcvc-bench eval --anchor-json`: x264 evaluated again, against the x265 file
    out = dataset / "vs_anchor.json"
    result = runner.invoke(app, ["eval", "--preset", "dcvc-ctc", "--color", "yuv420", "--dataset-config",
                                 str(dataset / "config.json"), "--baselines", "x264", "--qp", QPS, "--baselines-only",
                                 "--anchor-json", str(x265_file), "--anchor-name", "x265-file", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    (row,) = doc["anchor_json"]["comparisons"]
    assert row["method"] == "pchip" and row["test"] == "x264"
    diffs = [abs(row["classes"][cls]["bd_rate"] - expected[cls]) for cls in SEQUENCES]
    diffs.append(abs(row["average"] - expected_avg))
    assert max(diffs) < 0.01, (row, expected, expected_avg)
    print(f"BD-rate x264 vs x265 {expected} avg {expected_avg:.4f}; largest difference {max(diffs):.2e} pp")
    # the anchor's curve is in the RD section (the TUI's RD view) with the class-averaged BD row
    curves = {c["name"]: c for c in doc["rd"]["curves"]}
    assert curves["x265-file"]["kind"] == "anchor" and len(curves["x265-file"]["points"]) == 4
    assert any(b["anchor"] == "x265-file" and b["bd_rate_psnr"] == pytest.approx(row["average"])
               for b in doc["rd"]["bd"])
    assert "BD-rate vs x265-file" in result.output
    from dcvc_bench.evaldoc import rd_document
    from dcvc_bench.evaldoc.views import read_rd_view

    view = read_rd_view(out, rd_document(doc, out.name))
    shown = {c.name: c for c in view.curves}
    assert [round(p.bpp, 6) for p in shown["x265-file"].points] == [round(p["bpp"], 6)
                                                                    for p in curves["x265-file"]["points"]]


def test_missing_sequences_are_listed_not_dropped(evaluated):
    from dcvc_bench.eval import dcvc_json

    anchor = json.loads((evaluated.parent / "out-x265.dcvc.json").read_text())
    test = json.loads((evaluated.parent / "out-x264.dcvc.json").read_text())
    del test["UVG"]["Beta_96x64_30fps_420_8bit_YUV.yuv"]
    test["UVG"]["Delta.yuv"] = test["UVG"]["Alpha_96x64_30fps_420_8bit_YUV.yuv"]
    got = dcvc_json.compare(anchor, test)
    assert got["classes"]["UVG"]["anchor_not_evaluated"] == ["Beta_96x64_30fps_420_8bit_YUV.yuv"]
    assert got["classes"]["UVG"]["not_in_anchor"] == ["Delta.yuv"]
    assert got["classes"]["UVG"]["sequences"] == ["Alpha_96x64_30fps_420_8bit_YUV.yuv"]


def test_the_published_anchor_excerpt_loads_and_compares():
    """The real anchor's layout (an excerpt) is read as an anchor: class curves of 4 points."""
    from dcvc_bench.eval import dcvc_json

    data = dcvc_json.load(EXCERPT)
    pts = dcvc_json.class_points(data, "UVG", list(data["UVG"]))
    assert [p[0] for p in pts] == ["022", "025", "028", "031"]
    assert pts[0][1] == pytest.approx(0.057281) and pts[0][2] == pytest.approx(40.086706)
    assert dcvc_json.compare(data, data)["average"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("config, key", [
    ({"test_classes": {"UVG": {"sequences": {}}}}, "test_classes.UVG.base_path"),
    ({"test_classes": {"UVG": {"base_path": ".", "sequences": {"x.yuv": {"frames": "96"}}}}},
     "test_classes.UVG.sequences.x.yuv.frames"),
    ({"HEVC_B": {"base_path": ".", "sequences": {"x.yuv": {"frames": 96, "gop": 0}}}}, "HEVC_B.sequences.x.yuv.gop"),
    ({"HEVC_B": {"base_path": ".", "sequences": {"nope.yuv": {"frames": 96, "gop": 32}}}}, "HEVC_B.sequences.nope.yuv"),
])
def test_bad_dataset_config_is_one_line_naming_file_and_key(tmp_path, config, key):
    (tmp_path / "x.yuv").write_bytes(b"\0" * (64 * 64 * 3 // 2))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    result = runner.invoke(app, ["eval", "--baselines-only", "--baselines", "x265", "--dataset-config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0] and key in lines[0], lines


def test_x265_preset_name_in_preset_points_to_baseline_preset(tmp_path):
    result = runner.invoke(app, ["eval", "--baselines-only", "--baselines", "x265", "--preset", "veryslow",
                                 "--videos", str(tmp_path)])
    assert result.exit_code == 2 and "--baseline-preset veryslow" in result.output


def _frame_kinds(out: Path, name: str) -> list[str]:
    doc = json.loads(out.read_text())
    (result,) = [r for r in doc["results"] if r["id"] == "x265 qp32"]
    return [f["kind"] for f in result["clips"][name]["per_frame"]]


def test_which_condition_wins_per_sequence(dataset, tmp_path):
    """The dataset config's frames and gop apply unless a preset or a flag says otherwise:
    config (4 frames, gop 2) -> IPIP; --preset dcvc-allframes -> all 6 frames, one I-frame;
    --preset dcvc-ctc --frames 3 -> 3 frames, intra period 32."""
    name, _, (w, h) = SEQUENCES["HEVC_D"][0]
    config = {"HEVC_D": {"base_path": str(dataset / "seqs" / "HEVC_D"),
                         "sequences": {name: {"frames": 4, "gop": 2}}}}
    path = tmp_path / "old-format.json"
    path.write_text(json.dumps(config))
    base = ["eval", "--baselines-only", "--baselines", "x265", "--qp", "32", "--color", "yuv420",
            "--dataset-config", str(path)]
    cases = [([], ["I", "P", "I", "P"]), (["--preset", "dcvc-allframes"], ["I"] + ["P"] * (FRAMES - 1)),
             (["--preset", "dcvc-ctc", "--frames", "3"], ["I", "P", "P"])]
    for i, (extra, kinds) in enumerate(cases):
        out = tmp_path / f"o{i}.json"
        result = runner.invoke(app, [*base, *extra, "--json", str(out)])
        assert result.exit_code == 0, result.output
        assert _frame_kinds(out, name) == kinds, extra
        dcvc = json.loads((tmp_path / f"o{i}-x265.dcvc.json").read_text())
        rec = dcvc["HEVC_D"][name]["032"]
        assert (rec["i_frame_num"], rec["p_frame_num"]) == (kinds.count("I"), kinds.count("P"))
