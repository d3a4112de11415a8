"""The I-frame spec: one typed model per family, the same from TOML, trainer flags,
checkpoint records and eval-iframe options; each family with its own defaults. Torch-free."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dcvc_bench.curriculum.command import render_flags
from dcvc_bench.curriculum.iframe_spec import (
    I_FRAME_FLAGS,
    I_FRAME_TYPES,
    SPECS,
    CompressAISpec,
    OpenCVSpec,
    RVQSpec,
    VQGANSpec,
    default_spec,
    flag_help,
    parse_iframe_spec,
    spec_from_flags,
    spec_from_options,
    spec_from_record,
)
from dcvc_bench.errors import UserError
from dcvc_bench.train.args import build_parser, parse_args

SAMPLES = [
    OpenCVSpec(), OpenCVSpec(codec="webp", quality=55),
    CompressAISpec(), CompressAISpec(model_name="bmshj2018-hyperprior", quality=2, pretrained=False,
                                     checkpoint="w/i.pth"),
    VQGANSpec(config="vq.json", checkpoint="vq.pth"),
    RVQSpec(config="rvq.json", checkpoint="rvq.pth"), RVQSpec(config="rvq.json", checkpoint="rvq.pth", layers=3),
]
REQUIRED = ["--train_video_dir", "clips", "--lambda_value", "256", "--quality_index", "1", "--stage", "1"]


def trainer_spec(*flags: str):
    return parse_args([*REQUIRED, *flags]).i_frame_spec


def test_one_tuple_of_types_and_the_union_agree():
    assert I_FRAME_TYPES == ("compressai", "opencv", "vqgan", "rvq")
    assert I_FRAME_TYPES == tuple(SPECS) and {s.type for s in SAMPLES} == set(I_FRAME_TYPES)
    assert default_spec() == CompressAISpec()


def test_each_family_fills_its_own_defaults_from_the_flags():
    assert trainer_spec("--i_frame_type", "opencv") == OpenCVSpec(codec="jpeg", quality=90)
    assert trainer_spec() == CompressAISpec(model_name="cheng2020-anchor", quality=6, pretrained=True)
    assert trainer_spec("--i_frame_type", "opencv", "--i_frame_quality", "40").quality == 40
    assert trainer_spec("--no-i_frame_pretrained").pretrained is False
    assert trainer_spec("--i_frame_type", "rvq", "--vqgan_config", "a.json", "--vqgan_checkpoint", "b.pth") == \
        RVQSpec(config="a.json", checkpoint="b.pth", layers=None)


@pytest.mark.parametrize("spec", SAMPLES, ids=lambda s: s.label)
def test_flags_round_trip_through_the_trainer_parser(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the trainer checks that a local --i_frame_checkpoint exists
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "i.pth").write_bytes(b"")
    flags = spec.to_flags()
    assert set(flags) - {"i_frame_type"} <= set(I_FRAME_FLAGS)
    assert trainer_spec(*render_flags(flags)) == spec


def test_every_i_frame_flag_is_a_trainer_flag():
    known = {a.dest for a in build_parser()._actions}
    assert set(I_FRAME_FLAGS) <= known


@pytest.mark.parametrize("flags, message", [
    # the old silent bug: CompressAI's flag (and its default quality 6) applied to OpenCV
    (["--i_frame_type", "opencv", "--i_frame_model_name", "jpeg"],
     "--i_frame_model_name does not apply to --i_frame_type opencv; its flags: --i_frame_codec, --i_frame_quality"),
    (["--i_frame_codec", "webp"], "--i_frame_codec does not apply to --i_frame_type compressai"),
    (["--i_frame_type", "opencv", "--i_frame_quality", "101"], "--i_frame_quality: must be <= 100, got 101"),
    (["--i_frame_type", "opencv", "--i_frame_codec", "png"], "--i_frame_codec: must be 'jpeg' or 'webp', got 'png'"),
    (["--i_frame_type", "vqgan"], "--vqgan_config: required with --i_frame_type vqgan"),
    (["--i_frame_type", "rvq", "--vqgan_config", "a", "--vqgan_checkpoint", "b", "--rvq_layers", "0"],
     "--rvq_layers: must be >= 1, got 0"),
])
def test_bad_flags_are_one_line_naming_the_flag(flags, message):
    with pytest.raises(UserError) as err:
        trainer_spec(*flags)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("spec", SAMPLES, ids=lambda s: s.label)
def test_records_are_plain_data_and_round_trip(spec):
    record = spec.to_record()
    assert json.loads(json.dumps(record)) == record
    assert spec_from_record(record) == spec


def test_records_written_before_specs_still_load():
    """The trainer used to write CompressAI's keys for every type, OpenCV's format under model_name."""
    old = {"type": "opencv", "model_name": "webp", "quality": 70, "pretrained": True, "checkpoint": None}
    assert spec_from_record(old) == OpenCVSpec(codec="webp", quality=70)
    buggy = {"type": "opencv", "model_name": "jpeg", "quality": 6, "pretrained": True, "checkpoint": None}
    assert spec_from_record(buggy) == OpenCVSpec(codec="jpeg", quality=6)  # what that run really used
    cai = {"type": "compressai", "model_name": "cheng2020-anchor", "quality": 3, "pretrained": False,
           "checkpoint": "/w/i.pth"}
    assert spec_from_record(cai) == CompressAISpec(quality=3, pretrained=False, checkpoint="/w/i.pth")


@pytest.mark.parametrize("record, message", [
    (None, "no I-frame record"),
    ({"model_name": "jpeg"}, "no I-frame record"),
    ({"type": "h265"}, "i_frame.type: must be one of 'compressai', 'opencv', 'vqgan', 'rvq', got 'h265'"),
    ({"type": "opencv", "codec": "jpeg", "qualty": 90}, "i_frame.qualty: unknown key; did you mean 'quality'?"),
    ({"type": "vqgan", "config": "c.json"}, "i_frame.checkpoint: missing required key"),
])
def test_bad_records_are_one_line(record, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("?", r"\?")):
        spec_from_record(record)


def test_eval_iframe_options_map_to_each_familys_fields():
    assert spec_from_options("opencv", {"model": "webp", "quality": 30, "pretrained": False}) == \
        OpenCVSpec(codec="webp", quality=30)
    assert spec_from_options("compressai", {"model": "bmshj2018-factorized", "pretrained": False,
                                            "weights": "w.pth"}) == \
        CompressAISpec(model_name="bmshj2018-factorized", pretrained=False, checkpoint="w.pth")
    # --set reaches any field, from text
    assert spec_from_options("rvq", {"quality": 4, "weights": "r.pth"}, {"config": "r.json"}) == \
        RVQSpec(config="r.json", checkpoint="r.pth", layers=4)
    assert spec_from_options("opencv", {}, {"codec": "webp", "quality": "70"}) == OpenCVSpec(codec="webp", quality=70)
    with pytest.raises(UserError, match="--pretrained does not apply to --type opencv"):
        spec_from_options("opencv", {"pretrained": True})
    with pytest.raises(UserError, match="--set layers: not a setting of --type opencv; its settings: codec, quality"):
        spec_from_options("opencv", {}, {"layers": "2"})
    with pytest.raises(UserError, match="--type 'png': unknown I-frame type; use one of compressai, opencv"):
        spec_from_options("png", {})
    with pytest.raises(UserError, match="--quality: must be <= 100, got 500"):
        spec_from_options("opencv", {"quality": 500})


def test_with_settings_validates():
    assert OpenCVSpec().with_settings(quality=20) == OpenCVSpec(quality=20)
    with pytest.raises(UserError, match="i_frame.quality: must be >= 1, got 0"):
        OpenCVSpec().with_settings(quality=0)


def test_labels_and_help_come_from_the_specs():
    assert [s.label for s in SAMPLES[:4]] == ["opencv-jpeg-q90", "opencv-webp-q55", "compressai-cheng2020-anchor-q6",
                                              "compressai-bmshj2018-hyperprior-q2"]
    assert SAMPLES[1].curve == "opencv-webp" and SAMPLES[6].label == "rvq-l3"
    assert flag_help("i_frame_quality", "quality") == "quality (compressai: default 6; opencv: default 90)"
    assert flag_help("vqgan_config", "config") == "config (vqgan: required; rvq: required)"


def test_the_spec_module_does_not_import_torch():
    code = ("import sys; import dcvc_bench.curriculum.iframe_spec, dcvc_bench.train.args; "
            "print([m for m in ('torch', 'numpy', 'cv2') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
