"""What `plan` and `run` refuse (exit 2, one line naming the key) or warn about before
anything launches, from the files the schema cannot read: the VQ config JSON and the
clips' MP4 headers."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from dcvc_bench.clips import clip_size
from dcvc_bench.curriculum import parse_curriculum
from dcvc_bench.curriculum.iframe_checks import check_iframe_inputs, iframe_problems, iframe_warnings
from dcvc_bench.curriculum.iframe_training import BUNDLED_CONFIGS
from dcvc_bench.errors import UserError

from test_iframe_training import SMOKE, SRC, edit

REPO = Path(__file__).resolve().parents[2]


def problems(text: str) -> list[str]:
    return iframe_problems(parse_curriculum(text, SRC))


def test_the_shipped_smoke_curriculum_has_no_problem():
    assert problems(SMOKE) == []


def test_depths_deeper_than_the_codec_are_refused(tmp_path):
    config = tmp_path / "four.json"
    config.write_text(json.dumps({**json.loads((BUNDLED_CONFIGS / "tiny_rvq_f16.json").read_text()),
                                  "num_quantizers": 3}))
    text = edit('config = "tiny_rvq_f16"', f'config = "{config}"')
    text = edit("layers = 8", "layers = 2", text)
    with pytest.raises(UserError) as info:
        check_iframe_inputs(parse_curriculum(text, SRC))
    assert str(info.value) == (f"{SRC}: iframe_training.depths: [2, 4] do not fit the codec's 3 layers "
                               f"(num_quantizers in {config}); the deepest must be <= 3")


def test_a_p_frame_depth_deeper_than_the_codec_is_refused():
    text = edit("layers = 8", "layers = 9")
    assert problems(text) == [f"{SRC}: i_frame.layers: 9 is more than the codec's 8 layers "
                              f"(num_quantizers in {BUNDLED_CONFIGS / 'tiny_rvq_f16.json'})"]
    text = edit("i_frame_layers = 2 ", "i_frame_layers = 12 ")
    assert problems(text)[0].startswith(f"{SRC}: tracks[0].i_frame_layers: 12 is more than the codec's 8 layers")


def test_a_config_of_another_family_or_that_does_not_exist_is_refused():
    text = edit('config = "tiny_rvq_f16"', 'config = "tiny_vqgan_f16"')
    assert problems(text) == [f"{SRC}: iframe_training.config: {BUNDLED_CONFIGS / 'tiny_vqgan_f16.json'} is a "
                              "'vqgan' config; type 'rvq' needs one of family 'rvq'"]
    text = edit('config = "tiny_rvq_f16"', 'config = "tiny_rvq_f61"')
    [line] = problems(text)
    assert line.startswith(f"{SRC}: iframe_training.config: tiny_rvq_f61 is neither a file nor a config shipped "
                           "with dcvc-bench (") and "tiny_rvq_f16" in line


# ---------------------------------------------------------------- crops and real clips


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4_header(width: int, height: int, audio_first: bool = True) -> bytes:
    """An MP4 as far as its header goes: ftyp, an empty mdat, and a moov whose tracks
    have a tkhd (with the display size) and a handler (vide or soun)."""
    def track(handler: bytes, w: int, h: int) -> bytes:
        tkhd = bytes(4 + 20 + 8 + 8 + 36) + struct.pack(">II", w << 16, h << 16)
        hdlr = bytes(8) + handler + bytes(12) + b"\0"
        return _box(b"trak", _box(b"tkhd", tkhd) + _box(b"mdia", _box(b"hdlr", hdlr)))
    tracks = (track(b"soun", 0, 0) if audio_first else b"") + track(b"vide", width, height)
    return _box(b"ftyp", b"isom" + bytes(4)) + _box(b"mdat", b"") + _box(b"moov", tracks)


def test_clip_size_reads_the_video_tracks_header(tmp_path, synthetic_clips):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(mp4_header(176, 144))
    assert clip_size(clip) == (176, 144)
    clip.write_bytes(mp4_header(1920, 1080, audio_first=False))
    assert clip_size(clip) == (1920, 1080)
    assert clip_size(synthetic_clips / "synth_000.mp4") == (96, 64)  # written by the real encoder
    clip.write_bytes(b"\0\0\0\x10moov")  # cut short
    assert clip_size(clip) is None
    assert clip_size(tmp_path / "missing.mp4") is None


def test_an_i_frame_crop_larger_than_the_training_clips_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder, sizes in (("train", (256, 176, 96)), ("val", (64,))):
        (tmp_path / folder).mkdir()
        for i, side in enumerate(sizes):
            (tmp_path / folder / f"c{i}.mp4").write_bytes(mp4_header(side * 2, side))
    start, end = SMOKE.index("[data.synthetic]"), SMOKE.index("[model]")
    text = SMOKE[:start] + '[data]\ntrain_dir = "train"\nval_dir = "val"\n\n' + SMOKE[end:]
    assert problems(text) == []  # crop 64 fits every clip
    text = edit("crop_size = 64\nsteps_per_epoch = 4", "crop_size = 128\nsteps_per_epoch = 4", text)
    assert problems(text) == [f"{SRC}: iframe_training.crop_size: 128 is larger than the frames of "
                              "train/c2.mp4 (192x96); the I-frame steps crop 128x128 from each frame: use a "
                              "crop_size <= 96 in [iframe_training]"]


# ---------------------------------------------------------------- warnings


def test_disc_start_beyond_a_steps_iterations_is_a_warning_naming_the_steps():
    assert [w for w in iframe_warnings(parse_curriculum(SMOKE, SRC)) if "disc_start" in w] == []
    text = edit("disc_start = 2 ", "disc_start = 6 ")
    text = edit("epochs = 1                     # each", "epochs = [1, 2, 1]  # each", text)
    [line] = [w for w in iframe_warnings(parse_curriculum(text, SRC)) if "disc_start" in w]
    assert line == (f"{SRC}: iframe_training.disc_start: 6 is at or beyond the iterations of iframe-p2 "
                    "(1 epochs x 4 = 4), iframe-e2e (1 epochs x 4 = 4): the discriminator never starts there "
                    "(its GAN loss stays off); lower disc_start or train longer")
    inherited = edit("steps_per_epoch = 4\n", "", text)  # [train]'s steps_per_epoch (3) then
    assert "iframe-p4 (2 epochs x 3 = 6)" in iframe_warnings(parse_curriculum(inherited, SRC))[0]
    unknown = edit("steps_per_epoch = 3\n", "", inherited)  # whole epochs: their length is the data's
    assert [w for w in iframe_warnings(parse_curriculum(unknown, SRC)) if "disc_start" in w] == []


def test_absent_lpips_weights_are_a_warning(tmp_path):
    [line] = iframe_warnings(parse_curriculum(SMOKE, SRC))
    assert line.startswith(f"{SRC}: iframe_training.lpips_weights is not set: the perceptual (LPIPS) term is off")
    weights = tmp_path / "lpips.pth"
    text = edit("perceptual_weight = 1.0", f'perceptual_weight = 1.0\nlpips_weights = "{weights}"')
    assert "does not exist" in iframe_warnings(parse_curriculum(text, SRC))[0]
    weights.write_bytes(b"weights")
    assert iframe_warnings(parse_curriculum(text, SRC)) == []
    assert iframe_warnings(parse_curriculum(edit("perceptual_weight = 1.0", "perceptual_weight = 0.0"), SRC)) == []


# ---------------------------------------------------------------- the command line


def test_plan_refuses_a_schedule_that_does_not_fit_in_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(edit("depths = [2, 4]", "depths = [2, 4, 16]").replace(
        "epochs = 1                     # each", "epochs = 1  # each"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "plan", str(bad)], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: {bad}: iframe_training.depths: [2, 4, 16] do not fit the codec's 8 layers (num_quantizers in "
        f"{BUNDLED_CONFIGS / 'tiny_rvq_f16.json'}); the deepest must be <= 8"]
    assert not (tmp_path / "runs").exists()


def test_run_refuses_it_too_before_the_run_folder_exists(tmp_path, monkeypatch):
    from dcvc_bench.runner.commands import run_command

    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text(edit('config = "tiny_rvq_f16"', 'config = "tiny_vqgan_f16"'))
    with pytest.raises(UserError, match=r"iframe_training\.config: .* is a 'vqgan' config; type 'rvq'"):
        run_command(bad)
    assert not (tmp_path / "runs").exists()
