"""What `run` checks on disk before it launches anything: one line naming the curriculum key."""

from __future__ import annotations

import pytest

from dcvc_bench.curriculum import parse_curriculum
from dcvc_bench.curriculum.preflight import check_run_inputs, run_input_problems
from dcvc_bench.errors import UserError

from test_curriculum_schema import BASE, SRC, edit

SYNTH = "[data.synthetic]\nvideos = 2\nframes = 8\nwidth = 96\nheight = 96"
FOLDERS = edit(SYNTH, '[data]\ntrain_dir = "clips/train"\nval_dir = "clips/val"')
HINT = "point it at a folder of .mp4 clips, or use [data.synthetic]"


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Relative paths in a curriculum are relative to the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def clips(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not decoded here")


def problems(text):
    return run_input_problems(parse_curriculum(text, SRC))


def test_synthetic_data_needs_nothing_on_disk(here):
    assert problems(BASE) == []


def test_folders_with_a_clip_each_pass(here):
    clips(here / "clips" / "train", "a.mp4")
    clips(here / "clips" / "val", "B.MP4")
    assert problems(FOLDERS) == []


def test_a_yuv_clip_without_its_size_in_the_name_is_refused_before_launch(here):
    clips(here / "clips" / "train", "a_416x240_30fps_420_8bit_YUV.yuv", "b.yuv", "c.yuv")
    clips(here / "clips" / "val", "BQMall_832x480_60.yuv")
    assert problems(FOLDERS) == [
        "curricula/x.toml: [data].train_dir: clips/train/b.yuv (and 1 more) has no frame size in its name; rename or symlink "
        "it to a name that says it, like NAME_1920x1080_30fps_420_8bit.yuv"]


def test_missing_train_folder_names_the_curriculum_key(here):
    clips(here / "clips" / "val", "v.mp4")
    with pytest.raises(UserError) as info:
        check_run_inputs(parse_curriculum(FOLDERS, SRC))
    assert str(info.value) == f"{SRC}: [data].train_dir: folder clips/train does not exist; {HINT}"


def test_every_problem_is_counted(here):
    text = edit('preset = "tiny"', 'preset = "tiny"\nspynet_checkpoint = "w/spynet.pth"', FOLDERS)
    assert problems(text) == [
        f"{SRC}: [data].train_dir: folder clips/train does not exist; {HINT}",
        f"{SRC}: [data].val_dir: folder clips/val does not exist; {HINT}",
        f"{SRC}: [model].spynet_checkpoint: file w/spynet.pth does not exist; check the path",
    ]
    with pytest.raises(UserError, match=r"does not exist; point it .* \(\+2 more\)$"):
        check_run_inputs(parse_curriculum(text, SRC))


@pytest.mark.parametrize("make, expected", [
    (lambda d: clips(d, "notes.txt", ".hidden.mp4", "a.mp4.part"),
     "folder clips/train has no .mp4 clips (nor .yuv files or sub-folders of PNG/JPEG frames); " + HINT),
    (lambda d: clips(d / "inner", "a.mp4"),
     "folder clips/train has no .mp4 clips (nor .yuv files or sub-folders of PNG/JPEG frames); " + HINT),
    (lambda d: (d.parent.mkdir(parents=True), d.write_bytes(b"")),
     "clips/train is not a folder; " + HINT),
], ids=["only hidden or other files", "clips only in a sub-folder", "a file"])
def test_a_folder_without_clips_by_the_trainers_rule(here, make, expected):
    make(here / "clips" / "train")
    clips(here / "clips" / "val", "v.mp4")
    assert problems(FOLDERS) == [f"{SRC}: [data].train_dir: {expected}"]


def test_tilde_is_not_expanded_and_says_so(here):
    text = edit('val_dir = "clips/val"', 'val_dir = "~/clips/val"', FOLDERS)
    clips(here / "clips" / "train", "a.mp4")
    assert problems(text) == [f"{SRC}: [data].val_dir: folder ~/clips/val does not exist; {HINT}; "
                              "`~` is not expanded here, write the full path"]


@pytest.mark.parametrize("table, keys", [
    ('type = "compressai"\ncheckpoint = "i.pth"', ["[i_frame].checkpoint"]),
    ('type = "vqgan"\nconfig = "v.json"\ncheckpoint = "v.ckpt"', ["[i_frame].config", "[i_frame].checkpoint"]),
    ('type = "rvq"\nconfig = "r.json"\ncheckpoint = "r.pth"', ["[i_frame].config", "[i_frame].checkpoint"]),
], ids=["compressai", "vqgan", "rvq"])
def test_i_frame_files_must_exist(here, table, keys):
    text = edit('type = "opencv"\ncodec = "jpeg"\nquality = 90', table)
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == keys
    for name in ("i.pth", "v.json", "v.ckpt", "r.json", "r.pth"):
        (here / name).write_bytes(b"")
    assert problems(text) == []


def test_a_folder_given_for_a_file(here):
    (here / "w").mkdir()
    text = edit('preset = "tiny"', 'preset = "tiny"\nspynet_checkpoint = "w"')
    assert problems(text) == [f"{SRC}: [model].spynet_checkpoint: w is a folder; give the file"]
