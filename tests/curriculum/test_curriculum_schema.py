"""The TOML schema: the shipped curricula load, and every mistake is one exact line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcvc_bench.curriculum import DEFAULT_CURRICULUM, load_curriculum, parse_curriculum
from dcvc_bench.errors import UserError

REPO = Path(__file__).resolve().parents[2]
SRC = "curricula/x.toml"

BASE = """\
name = "t"

[data.synthetic]
videos = 2
frames = 8
width = 96
height = 96

[model]
preset = "tiny"

[i_frame]
type = "opencv"
codec = "jpeg"
quality = 90

[train]
crop_size = 64

[[tracks]]
lambda = 2048
quality_index = 4

[[stages]]
stage = 1
gops = [2, 3]
epochs = 1

[[stages]]
stage = 4
gops = [2, 3]
epochs = [2, 1]
use_scheduler = true

[gop_opt]
epochs = 1

[accelerate]
device = "cpu"
"""


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def error_of(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse_curriculum(text, SRC)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_base_is_valid():
    cur = parse_curriculum(BASE, SRC)
    assert cur.name == "t" and cur.run_dir == Path("runs/t")
    assert cur.source_text == BASE


def test_embedded_default_is_smoke_inside_the_package():
    assert DEFAULT_CURRICULUM == REPO / "dcvc_bench" / "curricula" / "smoke.toml"
    cur = load_curriculum(None)
    assert cur.name == "smoke"
    assert cur.source_text == DEFAULT_CURRICULUM.read_text(encoding="utf-8")
    assert cur.model.preset == "tiny" and cur.i_frame.type == "opencv" and cur.accelerate.device == "cpu"
    assert [s.stage for s in cur.stages] == [1, 2, 3, 4]
    assert all(s.gops == [2, 3] for s in cur.stages)
    synth = cur.data.synthetic
    assert synth is not None and (synth.val_width, synth.val_height) == (96, 64)
    assert synth.val_width % 64 != 0  # on purpose: eval must pad frames to a multiple of 64


def test_repo_symlink_reaches_the_packaged_curricula():
    assert (REPO / "curricula").resolve() == (REPO / "dcvc_bench" / "curricula").resolve()
    assert load_curriculum(REPO / "curricula" / "full.toml").name == "full"


def test_full_is_the_seed_protocol():
    cur = load_curriculum(REPO / "curricula" / "full.toml")
    assert (cur.data.train_dir, cur.data.val_dir) == ("data/train", "data/val")
    assert cur.i_frame.type == "compressai"
    assert (cur.i_frame.model_name, cur.i_frame.quality, cur.i_frame.pretrained) == ("cheng2020-anchor", 6, True)
    assert [(t.name, t.lambda_value, t.quality_index) for t in cur.tracks] == [("l2048", 2048.0, 4)]
    assert (cur.train.batch_size, cur.train.crop_size) == (4, 256)
    assert cur.train.learning_rate == cur.train.reset_learning_rate == 1e-4
    stage4 = cur.stage_options(cur.stages[-1])
    assert (stage4.use_scheduler, stage4.scheduler_patience, stage4.scheduler_factor, stage4.scheduler_min_lr) == (
        True, 3, 0.5, 1e-6)
    assert not any(cur.stage_options(s).use_scheduler for s in cur.stages[:3])


def test_defaults_fill_in():
    cur = parse_curriculum(BASE, SRC)
    synth = cur.data.synthetic
    assert (synth.val_frames, synth.val_width, synth.val_height, synth.val_seed) == (8, 96, 96, 1)
    assert cur.output_dir == "runs" and cur.accelerate.num_processes == 1
    assert (cur.failure.retries, cur.failure.divergence_retries, cur.failure.divergence_lr_factor) == (2, 2, 0.5)
    assert cur.gop_opt.gop is None and cur.gop_opt.enabled


@pytest.mark.parametrize("type_table, expected", [
    ('type = "vqgan"\nconfig = "v.json"\ncheckpoint = "v.ckpt"',
     {"i_frame_type": "vqgan", "vqgan_config": "v.json", "vqgan_checkpoint": "v.ckpt"}),
    ('type = "rvq"\nconfig = "r.json"\ncheckpoint = "r.pth"\nlayers = 4',
     {"i_frame_type": "rvq", "vqgan_config": "r.json", "vqgan_checkpoint": "r.pth", "rvq_layers": 4}),
    ('type = "compressai"',
     {"i_frame_type": "compressai", "i_frame_model_name": "cheng2020-anchor", "i_frame_quality": 6,
      "i_frame_pretrained": True}),
    ('type = "opencv"\ncodec = "webp"',
     {"i_frame_type": "opencv", "i_frame_codec": "webp", "i_frame_quality": 90}),
])
def test_every_i_frame_type_is_accepted(type_table, expected):
    """vqgan and rvq are refused by the I-frame registry when not built in, not by the schema."""
    cur = parse_curriculum(edit('type = "opencv"\ncodec = "jpeg"\nquality = 90', type_table), SRC)
    assert cur.i_frame.to_flags() == expected


SECOND_TRACK = "\n[[tracks]]\nlambda = {lam}\nquality_index = 3\n"

ERRORS = {
    "non-increasing gops": (
        edit("gops = [2, 3]\nepochs = 1", "gops = [2, 5, 3]\nepochs = 1"),
        "stages[0].gops: must be strictly increasing, got [2, 5, 3]"),
    "gop below 2": (
        edit("gops = [2, 3]\nepochs = 1", "gops = [1, 3]\nepochs = 1"),
        "stages[0].gops[0]: must be >= 2, got 1"),
    "epochs list length mismatch": (
        edit("epochs = [2, 1]", "epochs = [2, 1, 1]"),
        "stages[1].epochs: has 3 entries but gops has 2; give one per GOP or a single number"),
    "epochs not a count": (
        edit("epochs = [2, 1]", 'epochs = "ten"'),
        "stages[1].epochs: must be a whole number >= 1 or a list of them (one per GOP), got 'ten'"),
    "unknown key with did-you-mean": (
        edit("lambda = 2048", "lamda = 2048"),
        "tracks[0].lamda: unknown key; did you mean 'lambda'? (+1 more)"),
    "unknown stage option with did-you-mean": (
        edit("use_scheduler = true", "use_schedular = true"),
        "stages[1].use_schedular: unknown key; did you mean 'use_scheduler'?"),
    "unknown key in a tagged table": (
        edit('codec = "jpeg"', 'codex = "jpeg"'),
        "i_frame.codex: unknown key; did you mean 'codec'?"),
    "unknown key without a close match": (
        edit("[accelerate]", "[accelerate]\nzzz = 1"),
        "accelerate.zzz: unknown key; allowed: num_processes, gpu_ids, mixed_precision, "
        "cpu_threads_per_process, device"),
    "duplicate track lambdas": (
        BASE + SECOND_TRACK.format(lam=2048) + 'name = "other"\n',
        "tracks[1].lambda: must be unique, 2048.0 is also used by tracks[0]"),
    "duplicate track names": (
        BASE + SECOND_TRACK.format(lam="2048.5"),
        "tracks[1].name: must be unique, 'l2048' is also used by tracks[0]"),
    "stage out of range": (
        edit("stage = 4", "stage = 5"),
        "stages[1].stage: must be 1, 2, 3 or 4, got 5"),
    "stages not increasing": (
        edit("stage = 4", "stage = 1"),
        "stages[1].stage: stages must be listed in increasing order without duplicates, got [1, 1]"),
    "gop_opt without stage 4": (
        edit("stage = 4", "stage = 3"),
        "gop_opt: needs stage 4 in [[stages]] (it fine-tunes stage 4's last GOP)"),
    "gop_opt gop below stage 4's last": (
        edit("[gop_opt]", "[gop_opt]\ngop = 2"),
        "gop_opt.gop: must be >= stage 4's last GOP (3), got 2"),
    "wrong type": (
        edit("crop_size = 64", 'crop_size = "64"'),
        "train.crop_size: must be a whole number, got '64'"),
    "bool is not a number": (
        edit("crop_size = 64", "crop_size = true"),
        "train.crop_size: must be a whole number, got true"),
    "bad i-frame type": (
        edit('type = "opencv"', 'type = "mpeg"'),
        "i_frame.type: must be one of 'compressai', 'opencv', 'vqgan', 'rvq', got 'mpeg'"),
    "literal": (
        edit('device = "cpu"', 'device = "gpu"'),
        "accelerate.device: must be 'auto' or 'cpu', got 'gpu'"),
    "missing key": (
        edit("quality_index = 4", ""),
        "tracks[0].quality_index: missing required key"),
    "both data sources": (
        edit("[data.synthetic]", '[data]\ntrain_dir = "clips"\n\n[data.synthetic]'),
        "data.train_dir: cannot be combined with [data.synthetic]; use one or the other"),
    "val_dir missing": (
        edit("[data.synthetic]\nvideos = 2\nframes = 8\nwidth = 96\nheight = 96", '[data]\ntrain_dir = "clips"'),
        "data.val_dir: missing required key (the folder of validation .mp4 clips)"),
    "crop larger than synthetic clips": (
        edit("crop_size = 64", "crop_size = 128"),
        "train.crop_size: must be <= the synthetic clips' size 96x96, got 128"),
    "synthetic clips shorter than a GOP": (
        edit("frames = 8", "frames = 2"),
        "data.synthetic.frames: must be >= the largest GOP (3), got 2"),
    "fp16 on cpu": (
        edit('device = "cpu"', 'device = "cpu"\nmixed_precision = "fp16"'),
        'accelerate.mixed_precision: "fp16" needs a GPU; use "bf16" or "no" with device = "cpu"'),
    "bad run name": (
        edit('name = "t"', 'name = "my run"'),
        "name: must start with a letter or digit and contain only letters, digits, '_', '.', '-', got 'my run'"),
    "several errors": (
        edit("quality_index = 4", "quality_index = 9", edit("crop_size = 64", "crop_size = 0")),
        "train.crop_size: must be >= 16, got 0 (+1 more)"),
}


@pytest.mark.parametrize("text, expected", ERRORS.values(), ids=ERRORS.keys())
def test_validation_error_is_one_exact_line(text, expected):
    assert error_of(text) == f"{SRC}: {expected}"


def test_bad_toml_syntax_names_line_and_column():
    message = error_of(edit("crop_size = 64", "crop_size = = 64"))
    assert message.startswith(f"{SRC}: invalid TOML: ")
    assert "line 18, column 13" in message


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserError, match=r"^.*nope\.toml: no such curriculum file$"):
        load_curriculum(missing)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(UserError, match="is a folder; give a curriculum .toml file"):
        load_curriculum(tmp_path)


def test_errors_name_the_file_as_given(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(edit("stage = 4", "stage = 5"))
    with pytest.raises(UserError) as info:
        load_curriculum(str(path))
    assert str(info.value) == f"{path}: stages[1].stage: must be 1, 2, 3 or 4, got 5"


def test_the_documented_example_is_valid():
    """The README's annotated example must stay a curriculum that loads."""
    doc = (REPO / "README.md").read_text(encoding="utf-8")
    section = doc.split("## The curriculum", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    cur = parse_curriculum(example, "README.md")
    assert [t.name for t in cur.tracks] == ["l256", "l2048"]
    assert cur.stages[1].epochs_per_gop() == [5, 5, 5, 10]
