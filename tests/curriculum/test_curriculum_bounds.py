"""Ranges, names, paths and the file itself: each mistake is one exact line naming the key."""

from __future__ import annotations

import pytest

from dcvc_bench.curriculum import load_curriculum, parse_curriculum, plan_summary
from dcvc_bench.curriculum import expand
from dcvc_bench.curriculum.bounds import MAX_SEED
from dcvc_bench.curriculum.zoo import COMPRESSAI_QUALITIES
from dcvc_bench.errors import UserError

from test_curriculum_schema import BASE, SRC, edit, error_of

OPENCV = 'type = "opencv"\ncodec = "jpeg"\nquality = 90'
SYNTH = "videos = 2\nframes = 8\nwidth = 96\nheight = 96"

ERRORS = {
    "width 10^18": (edit("width = 96", "width = 1000000000000000000"),
                    "data.synthetic.width: must be <= 8192, got 1000000000000000000 (+1 more)"),
    "width 1e18 is not a whole number": (edit("width = 96", "width = 1e18"),
                                         "data.synthetic.width: must be a whole number, got 1e+18 (+1 more)"),
    "width beyond 10^30": (edit("width = 96", "width = 1000000000000000000000000000000"),
                           "data.synthetic.width: must be <= 8192, got 1000000000000000000000000000000 (+1 more)"),
    "videos": (edit("videos = 2", "videos = 10001"), "data.synthetic.videos: must be <= 10000, got 10001"),
    "frames": (edit("frames = 8", "frames = 10001"), "data.synthetic.frames: must be <= 10000, got 10001 (+1 more)"),
    "synthetic pixel budget": (
        edit(SYNTH, "videos = 10000\nframes = 10000\nwidth = 8192\nheight = 8192"),
        "data.synthetic.videos: the training clips would hold 6.7e+15 pixels (videos x frames x width x height), "
        "more than 5e+10; make them fewer, shorter or smaller, or use train_dir/val_dir with real clips"),
    "seed": (edit("videos = 2", "videos = 2\nseed = 2147483648"),
             "data.synthetic.seed: must be <= 2147483647, got 2147483648"),
    "gop": (edit("gops = [2, 3]\nepochs = 1", "gops = [2, 129]\nepochs = 1"),
            "stages[0].gops[1]: must be <= 128, got 129"),
    "epochs": (edit("epochs = [2, 1]", "epochs = [2, 10001]"),
               "stages[1].epochs: must be a whole number 1..10000 or a list of them (one per GOP), got [2, 10001]"),
    "gop_opt epochs": (edit("[gop_opt]\nepochs = 1", "[gop_opt]\nepochs = 10001"),
                       "gop_opt.epochs: must be <= 10000, got 10001"),
    "batch": (edit("crop_size = 64", "crop_size = 64\nbatch_size = 1025"), "train.batch_size: must be <= 1024, got 1025"),
    "crop": (edit("crop_size = 64", "crop_size = 8193"), "train.crop_size: must be <= 8192, got 8193"),
    "stage override keeps the range": (edit("use_scheduler = true", "use_scheduler = true\nbatch_size = 5000"),
                                       "stages[1].batch_size: must be <= 1024, got 5000"),
    "learning rate": (edit("crop_size = 64", "crop_size = 64\nlearning_rate = 2.0"),
                      "train.learning_rate: must be <= 1.0, got 2.0"),
    "steps per epoch": (edit("crop_size = 64", "crop_size = 64\nsteps_per_epoch = 10000001"),
                        "train.steps_per_epoch: must be <= 10000000, got 10000001"),
    "eval frames": (edit("crop_size = 64", "crop_size = 64\neval_max_frames = 10001"),
                    "train.eval_max_frames: must be <= 10000, got 10001"),
    "accumulation": (edit("crop_size = 64", "crop_size = 64\ngradient_accumulation_steps = 1025"),
                     "train.gradient_accumulation_steps: must be <= 1024, got 1025"),
    "lambda": (edit("lambda = 2048", "lambda = 1e6"), "tracks[0].lambda: must be <= 100000.0, got 1000000.0"),
    "processes": (edit('device = "cpu"', "num_processes = 65"), "accelerate.num_processes: must be <= 64, got 65"),
    "gpu id": (edit('device = "cpu"', "gpu_ids = [1024]"), "accelerate.gpu_ids[0]: must be <= 1023, got 1024"),
    "retries": (BASE + "\n[failure]\nretries = 101\n", "failure.retries: must be <= 100, got 101"),
    "rvq layers": (edit(OPENCV, 'type = "rvq"\nconfig = "r.json"\ncheckpoint = "r.pth"\nlayers = 65'),
                   "i_frame.layers: must be <= 64, got 65"),
    "name too long": (edit('name = "t"', f'name = "{"a" * 5000}"'),
                      "name: is 5000 characters long; a name must be at most 100"),
    "track name too long": (edit("quality_index = 4", f'quality_index = 4\nname = "{"b" * 101}"'),
                            "tracks[0].name: is 101 characters long; a name must be at most 100"),
    "bad name quotes a short value": (edit('name = "t"', f'name = "a/{"c" * 80}"'),
                                      "name: must start with a letter or digit and contain only letters, digits, "
                                      "'_', '.', '-', got " + repr("a/" + "c" * 80)[:59] + "…"),
    "output_dir too long": (edit('name = "t"', f'name = "t"\noutput_dir = "{"o/" * 1800}"'),
                            "output_dir: is 3600 bytes long; must be at most 3584 bytes (Linux's 4096-byte limit "
                            "less 512 for the run folder's own names)"),
    "output_dir part too long": (edit('name = "t"', f'name = "t"\noutput_dir = "runs/{"b" * 256}"'),
                                 "output_dir: has a 256-byte part ('bbbbbbbbbbbbbbbbbbbbbbbbbbbb…); each folder or file "
                                 "name in a path must be at most 255 bytes"),
    "bytes, not characters": (edit('name = "t"', f'name = "t"\noutput_dir = "{"é" * 128}"'),
                              "output_dir: has a 256-byte part ('éééééééééééééééééééééééééééé…); each folder or file "
                              "name in a path must be at most 255 bytes"),
    "NUL in output_dir": (edit('name = "t"', 'name = "t"\noutput_dir = "runs/\\u0000x"'),
                          "output_dir: must not contain control characters, got '\\x00' at character 6 of 'runs/\\x00x'"),
    "newline in output_dir": (edit('name = "t"', 'name = "t"\noutput_dir = """runs\nx"""'),
                              "output_dir: must not contain control characters, got '\\n' at character 5 of 'runs\\nx'"),
    "tab in a data folder": (edit(f"[data.synthetic]\n{SYNTH}", '[data]\ntrain_dir = "a\\tb"\nval_dir = "v"'),
                             "data.train_dir: must not contain control characters, got '\\t' at character 2 of 'a\\tb'"),
    "path too long": (edit('preset = "tiny"', f'preset = "tiny"\nspynet_checkpoint = "{"s/" * 2100}"'),
                      "model.spynet_checkpoint: is 4200 bytes long; must be at most 4096 bytes (Linux's limit)"),
    "unknown zoo model": (edit(OPENCV, 'type = "compressai"\nmodel_name = "chen2020-anchor"'),
                          "i_frame.model_name: is not a CompressAI zoo model; did you mean 'cheng2020-anchor'? valid: "
                          "bmshj2018-factorized, bmshj2018-hyperprior, mbt2018-mean, mbt2018, cheng2020-anchor, "
                          "cheng2020-attn"),
    "vbr model is not a fixed-quality codec": (edit(OPENCV, 'type = "compressai"\nmodel_name = "mbt2018-vbr"'),
                                               "i_frame.model_name: is not a CompressAI zoo model; did you mean "
                                               "'mbt2018'? valid: bmshj2018-factorized, bmshj2018-hyperprior, "
                                               "mbt2018-mean, mbt2018, cheng2020-anchor, cheng2020-attn"),
    "cheng2020 has six qualities": (edit(OPENCV, 'type = "compressai"\nmodel_name = "cheng2020-attn"\nquality = 7'),
                                    "i_frame.quality: must be 1..6 for cheng2020-attn, got 7"),
    "no zoo model has quality 9": (edit(OPENCV, 'type = "compressai"\nmodel_name = "mbt2018"\nquality = 9'),
                                   "i_frame.quality: must be <= 8, got 9"),
    "BOM in text": ("\ufeff" + BASE, "starts with a UTF-8 byte-order mark; save it without one (as plain UTF-8)"),
    "nested too deep": (BASE + "x = " + "[" * 5000 + "]" * 5000 + "\n",
                        "arrays or inline tables are nested too deeply to read; a curriculum needs at most two "
                        "levels (an array of tables)"),
}


@pytest.mark.parametrize("text, expected", ERRORS.values(), ids=ERRORS.keys())
def test_out_of_range_is_one_exact_line(text, expected):
    assert error_of(text) == f"{SRC}: {expected}"


@pytest.mark.parametrize("text", [
    edit(SYNTH, "videos = 10000\nframes = 100\nwidth = 64\nheight = 64"),
    edit(SYNTH, "videos = 1\nframes = 30\nwidth = 8192\nheight = 8192"),
    edit("lambda = 2048", "lambda = 100000"),
    edit('device = "cpu"', "num_processes = 64"),
    edit('name = "t"', f'name = "{"n" * 100}"\noutput_dir = "{"o/" * 1792}"'),
    edit('name = "t"', 'name = "t"\noutput_dir = "données/ünïcode runs"'),
    edit(OPENCV, 'type = "compressai"\nmodel_name = "cheng2020-anchor"\nquality = 1'),
    edit(OPENCV, 'type = "compressai"\nmodel_name = "bmshj2018-hyperprior"\nquality = 8'),
], ids=["many small clips", "one 8K clip", "largest lambda", "64 processes", "longest name and output_dir",
        "unicode path", "cheng2020 quality 1", "bmshj2018 quality 8"])
def test_the_maxima_themselves_are_accepted(text):
    parse_curriculum(text, SRC)


def test_the_largest_seed_gives_a_valid_validation_seed():
    cur = parse_curriculum(edit("videos = 2", f"videos = 2\nseed = {MAX_SEED}"), SRC)
    assert cur.data.synthetic.val_seed == 0 != cur.data.synthetic.seed


@pytest.mark.parametrize("name", COMPRESSAI_QUALITIES)
def test_every_zoo_model_is_accepted_at_its_highest_quality(name):
    top = COMPRESSAI_QUALITIES[name][-1]
    cur = parse_curriculum(edit(OPENCV, f'type = "compressai"\nmodel_name = "{name}"\nquality = {top}'), SRC)
    assert cur.i_frame.to_flags()["i_frame_quality"] == top


@pytest.mark.parametrize("data, expected", [
    (b"\xef\xbb\xbf" + BASE.encode(), "starts with a UTF-8 byte-order mark; save it without one (as plain UTF-8)"),
    (BASE.encode("utf-16"), "starts with a UTF-16 byte-order mark; save it as plain UTF-8"),
    (BASE.encode("utf-32"), "starts with a UTF-32 byte-order mark; save it as plain UTF-8"),
    (BASE.encode() + b"#" * (1024 * 1024), "larger than 1024 KiB; a curriculum is a short TOML text file "
                                           "(is this the right file?)"),
    (BASE.replace("t", "ü", 1).encode("latin-1"), "not UTF-8 text (byte 8); a curriculum is a TOML text file"),
], ids=["utf-8 bom", "utf-16", "utf-32", "over 1 MiB", "latin-1"])
def test_a_file_that_is_not_plain_utf8_toml_is_named(tmp_path, data, expected):
    path = tmp_path / "x.toml"
    path.write_bytes(data)
    with pytest.raises(UserError) as info:
        load_curriculum(path)
    assert str(info.value) == f"{path}: {expected}"


def test_an_endless_file_is_not_read_forever():
    with pytest.raises(UserError, match=r"^/dev/zero: larger than 1024 KiB"):
        load_curriculum("/dev/zero")


def test_a_5000_character_file_name_is_one_line():
    with pytest.raises(UserError, match="cannot read: File name too long$"):
        load_curriculum("c" * 5000 + ".toml")


@pytest.mark.parametrize("text, expected", [
    (BASE, "5 steps = 1 track x (2 stages: 4 GOP steps + GOP optimisation)"),
    (BASE.split("[[stages]]\nstage = 4")[0].replace("[gop_opt]\nepochs = 1\n", "") + '[accelerate]\ndevice = "cpu"\n',
     "2 steps = 1 track x (1 stage: 2 GOP steps)"),
], ids=["base", "stage 1 only"])
def test_plan_summary_counts_tracks_stages_and_steps(text, expected):
    cur = parse_curriculum(text, SRC)
    assert plan_summary(cur, expand(cur)) == expected
