"""[iframe_training]: the I-frame steps it expands into (before every P-frame step), their
exact flags, what they produce and consume, the P-frame steps reading the trained codec,
the per-track RVQ depth, the config hashes, and bad input as one line naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcvc_bench.curriculum import StartKind, StepKind, config_hashes, expand, parse_curriculum, plan_rows
from dcvc_bench.curriculum.command import planned_run_flags, run_paths
from dcvc_bench.curriculum.iframe_training import BUNDLED_CONFIGS, TRAINED, vq_config_path
from dcvc_bench.curriculum.steps import IFRAME_ARTIFACT, IFRAME_MODULE, PFRAME_MODULE
from dcvc_bench.errors import UserError

REPO = Path(__file__).resolve().parents[2]
SMOKE = (REPO / "curricula" / "rvq-smoke.toml").read_text()
SRC = "x.toml"


def edit(old: str, new: str, text: str = SMOKE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def error(text: str) -> str:
    with pytest.raises(UserError) as info:
        parse_curriculum(text, SRC)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def steps_of(text: str = SMOKE):
    cur = parse_curriculum(text, SRC)
    return cur, expand(cur)


# ---------------------------------------------------------------- expansion


def test_progressive_then_end_to_end_expands_into_i_frame_steps_before_every_p_frame_step():
    cur, steps = steps_of()
    assert [s.id for s in steps] == ["iframe-p2", "iframe-p4", "iframe-e2e",
                                     "l256-s1g2", "l256-s2g2", "l2048-s1g2", "l2048-s2g2"]
    iframe = steps[:3]
    assert all(s.kind is StepKind.IFRAME and s.module == IFRAME_MODULE and s.track == "iframe" for s in iframe)
    assert [s.tag for s in iframe] == [s.phase_id for s in iframe] == ["p2", "p4", "e2e"]
    assert [(s.train_flags.get("rvq_train_layers"), s.train_flags.get("rvq_frozen_layers")) for s in iframe] == \
        [(2, 0), (4, 2), (None, None)]
    assert [s.planned_start for s in iframe] == [StartKind.FRESH, StartKind.PREVIOUS_STEP_FINAL,
                                                 StartKind.PREVIOUS_STEP_FINAL]
    assert [s.checkpoint_name("latest") for s in iframe] == [
        "iframe_rvq_p2_latest.pth", "iframe_rvq_p4_latest.pth", "iframe_rvq_e2e_latest.pth"]
    assert all(s.module == PFRAME_MODULE for s in steps[3:])
    assert [s.label for s in iframe] == ["I-frame rvq, layers 1-2", "I-frame rvq, layers 1-4, 1-2 frozen",
                                         "I-frame rvq, end to end"]
    assert {s.group for s in iframe} == {"I-frame"}


def test_the_i_frame_steps_update_the_codec_and_every_p_frame_step_reads_it():
    _, steps = steps_of()
    p2, p4, e2e, first, second = steps[:5]
    assert p2.produces == p4.produces == e2e.produces == IFRAME_ARTIFACT
    assert p2.consumes == () and p4.consumes == e2e.consumes == (IFRAME_ARTIFACT,) and p4.updates
    assert first.consumes == (IFRAME_ARTIFACT,) and first.inputs == (IFRAME_ARTIFACT,) and not first.updates
    assert second.consumes == ("l256:pframe", IFRAME_ARTIFACT) and second.inputs == (IFRAME_ARTIFACT,)
    assert all(s.input_flags == ((IFRAME_ARTIFACT, "vqgan_checkpoint"),) for s in steps[3:])


@pytest.mark.parametrize("table, tags", [
    ('type = "vqgan"\nconfig = "tiny_vqgan_f16"\nepochs = 2', ["train"]),
    ('type = "rvq"\nconfig = "tiny_rvq_f16"\nepochs = 2', ["e2e"]),
    ('type = "rvq"\nconfig = "tiny_rvq_f16"\nstrategy = "progressive"\ndepths = [2, 4, 8]\nepochs = [1, 2, 3]',
     ["p2", "p4", "p8"]),
    ('type = "compressai"\nepochs = 2', ["train"]),
])
def test_each_family_and_strategy_has_its_steps(table, tags):
    base = SMOKE[:SMOKE.index("[iframe_training]")] + "[iframe_training]\n" + table + "\n\n" + \
        SMOKE[SMOKE.index("[train]"):].replace("i_frame_layers = 2", "")
    cur, steps = steps_of(base)
    iframe = [s for s in steps if s.is_iframe]
    assert [s.tag for s in iframe] == tags
    if "epochs = [1, 2, 3]" in table:
        assert [s.epochs for s in iframe] == [1, 2, 3]
        assert [s.train_flags["rvq_frozen_layers"] for s in iframe] == [0, 2, 4]


def test_the_i_frame_steps_exact_flags_follow_the_contract():
    cur, steps = steps_of()
    flags = steps[1].train_flags
    train_dir, val_dir = run_paths(cur).data_dirs
    assert flags == {
        "train_video_dir": str(train_dir), "val_video_dir": str(val_dir), "i_frame_type": "rvq",
        "vqgan_config": str(BUNDLED_CONFIGS / "tiny_rvq_f16.json"), "recon_loss": "l1", "perceptual_weight": 1.0,
        "codebook_weight": 1.0, "disc_start": 2, "disc_weight": 0.8, "rvq_train_layers": 4, "rvq_frozen_layers": 2,
        "step_tag": "p4", "epochs": 1, "batch_size": 4, "crop_size": 64, "learning_rate": 2e-4,
        "steps_per_epoch": 4, "num_workers": 0, "grad_clip_max_norm": 1.0, "seed": 42, "mixed_precision": "no"}
    run = planned_run_flags(cur, steps[1], steps)
    paths = run_paths(cur)
    assert run == {"checkpoint_dir": str(paths.checkpoints_dir("iframe")),
                   "events_file": str(paths.events_file("iframe-p4")),
                   "load_pretrained": str(paths.final_checkpoint("iframe-p2"))}
    assert planned_run_flags(cur, steps[0], steps) == {"checkpoint_dir": str(paths.checkpoints_dir("iframe")),
                                                       "events_file": str(paths.events_file("iframe-p2"))}


def test_compressai_training_passes_its_model_quality_and_lambda_and_the_p_frame_steps_read_it():
    text = edit('type = "rvq"\nlayers = 8', 'type = "compressai"', SMOKE)
    text = text[:text.index("[iframe_training]")] + \
        '[iframe_training]\ntype = "compressai"\nmodel_name = "mbt2018-mean"\nquality = 3\nepochs = 1\n\n' + \
        text[text.index("[i_frame]"):].replace("i_frame_layers = 2", "")
    cur, steps = steps_of(text)
    first = steps[0]
    assert first.id == "iframe-train" and first.lambda_value == 0.0067  # CompressAI's λ for quality 3
    assert {k: first.train_flags[k] for k in ("i_frame_type", "i_frame_model_name", "i_frame_quality",
                                               "lambda_value")} == \
        {"i_frame_type": "compressai", "i_frame_model_name": "mbt2018-mean", "i_frame_quality": 3,
         "lambda_value": 0.0067}
    assert "vqgan_config" not in first.train_flags and "recon_loss" not in first.train_flags
    pframe = steps[1]
    assert {k: v for k, v in pframe.train_flags.items() if k.startswith("i_frame")} == {
        "i_frame_type": "compressai", "i_frame_model_name": "mbt2018-mean", "i_frame_quality": 3,
        "i_frame_pretrained": False}
    assert planned_run_flags(cur, pframe, steps)["i_frame_checkpoint"] == \
        str(run_paths(cur).final_checkpoint("iframe-train"))


def test_p_frame_steps_get_the_trained_codec_at_their_tracks_depth():
    cur, steps = steps_of()
    by_id = {s.id: s for s in steps}
    archive = str(run_paths(cur).final_checkpoint("iframe-e2e"))
    for step_id, layers in (("l256-s1g2", 2), ("l256-s2g2", 2), ("l2048-s1g2", 8), ("l2048-s2g2", 8)):
        step = by_id[step_id]
        assert step.train_flags["i_frame_type"] == "rvq" and step.train_flags["rvq_layers"] == layers
        assert step.train_flags["vqgan_config"] == str(BUNDLED_CONFIGS / "tiny_rvq_f16.json")
        assert "vqgan_checkpoint" not in step.train_flags  # the runner's: the producer's archive
        assert planned_run_flags(cur, step, steps)["vqgan_checkpoint"] == archive
    row = next(r for r in plan_rows(cur, steps) if r["id"] == "l256-s1g2")
    assert row["command"].endswith(f"--vqgan_checkpoint {archive}") and "--rvq_layers 2" in row["command"]
    assert cur.i_frame.checkpoint == TRAINED


def test_plan_json_rows_of_i_frame_steps():
    cur, steps = steps_of()
    rows = json.loads(json.dumps(plan_rows(cur, steps)))
    first = rows[0]
    assert (first["kind"], first["stage"], first["gop"], first["lambda"], first["quality_index"], first["tag"],
            first["i_frame_type"], first["produces"], first["consumes"]) == \
        ("iframe", None, None, None, None, "p2", "rvq", "iframe:codec", [])
    assert " -m dcvc_bench.train.iframe " in first["command"]
    assert rows[3]["consumes"] == ["iframe:codec"] and "tag" not in rows[3]


def test_a_bundled_config_name_resolves_and_a_path_is_kept_as_written(tmp_path):
    assert vq_config_path("rvq_f16_8") == vq_config_path("rvq_f16_8.json") == BUNDLED_CONFIGS / "rvq_f16_8.json"
    assert vq_config_path("configs/mine.json") == Path("configs/mine.json")
    mine = tmp_path / "rvq_f16_8"  # a file of that name beside the user wins
    mine.write_text("{}")
    assert vq_config_path(str(mine)) == mine


# ---------------------------------------------------------------- config hashes


def _changed(old: str, new: str) -> set[str]:
    a, b = parse_curriculum(old), parse_curriculum(new)
    ha, hb = config_hashes(a, expand(a)), config_hashes(b, expand(b))
    assert ha.keys() == hb.keys()
    return {k for k in ha if ha[k] != hb[k]}


def test_editing_iframe_training_changes_the_i_frame_steps_and_every_p_frame_step():
    everything = {s.id for s in steps_of()[1]}
    assert _changed(SMOKE, edit("learning_rate = 2e-4", "learning_rate = 1e-4")) == everything
    # Only the last I-frame step's settings: it and every P-frame step (they read its archive).
    last = edit("epochs = 1                     # each", "epochs = [1, 1, 2]            # each")
    assert _changed(SMOKE, last) == everything - {"iframe-p2", "iframe-p4"}
    # The first step's: its hash only; the later ones re-run by the lineage rule (runner.resume).
    first = edit("epochs = 1                     # each", "epochs = [2, 1, 1]            # each")
    assert _changed(SMOKE, first) == {"iframe-p2"}


def test_the_p_frame_depth_changes_only_the_p_frame_steps_at_that_depth():
    assert _changed(SMOKE, edit("layers = 8", "layers = 6")) == {"l2048-s1g2", "l2048-s2g2"}
    assert _changed(SMOKE, edit("i_frame_layers = 2 ", "i_frame_layers = 4 ")) == {"l256-s1g2", "l256-s2g2"}


def test_the_hash_covers_the_vq_architecture_not_where_it_was_found(tmp_path):
    config = tmp_path / "rvq.json"
    data = json.loads((BUNDLED_CONFIGS / "tiny_rvq_f16.json").read_text())
    config.write_text(json.dumps(data))
    by_path = edit('config = "tiny_rvq_f16"', f'config = "{config}"')
    base = parse_curriculum(by_path)
    before = config_hashes(base, expand(base))
    config.write_text(json.dumps({**data, "codebook_size": 32}))
    after = config_hashes(base, expand(base))
    assert {k for k in before if before[k] != after[k]} == {s.id for s in expand(base)}
    # A moved installation (another absolute path to the shipped config) keeps the hashes.
    cur = parse_curriculum(SMOKE)
    steps = expand(cur)
    moved = [s.__class__(**{**s.__dict__, "train_flags": {**s.train_flags, "vqgan_config": "/elsewhere/x.json"}})
             for s in steps]
    assert config_hashes(cur, moved) == config_hashes(cur, steps)


def test_curricula_without_iframe_training_keep_their_hashes():
    fixture = REPO / "tests" / "tui" / "fixtures" / "smoke-run"
    cur = parse_curriculum((fixture / "curriculum.toml").read_text())
    recorded = {r["id"]: r["config_hash"] for r in json.loads((fixture / "ledger.json").read_text())["steps"]}
    assert config_hashes(cur, expand(cur)) == recorded


# ---------------------------------------------------------------- bad input, one line naming the key


@pytest.mark.parametrize("old, new, expected", [
    ('strategy = "progressive_then_end_to_end"', 'strategy = "progresive"',
     "iframe_training.strategy: must be 'end_to_end', 'progressive' or 'progressive_then_end_to_end', "
     "got 'progresive'"),
    ("depths = [2, 4]", "depths = [4, 2]", "iframe_training.depths: must be strictly increasing, got [4, 2]"),
    ("depths = [2, 4]", "depths = [0, 4]", "iframe_training.depths[0]: must be >= 1, got 0"),
    ("depths = [2, 4]                # iframe-p2", "# iframe-p2",
     'iframe_training.depths: missing; strategy "progressive_then_end_to_end" trains the first L layers for '
     "each L in depths, e.g. depths = [2, 4, 6, 8]"),
    ('strategy = "progressive_then_end_to_end"', 'strategy = "end_to_end"',
     'iframe_training.depths: only with strategy "progressive" or "progressive_then_end_to_end" '
     '("end_to_end" trains every layer at once)'),
    ("epochs = 1                     # each", "epochs = [1, 1]  # each",
     "iframe_training.epochs: has 2 entries but there are 3 I-frame steps (iframe-p2, iframe-p4, iframe-e2e); "
     "give one per step or a single number"),
    ("epochs = 1                     # each", "epochs = 0  # each",
     "iframe_training.epochs: must be a whole number 1..10000 or a list of them (one per I-frame step), got 0"),
    ("disc_weight = 0.8", "disc_weight = -1.0", "iframe_training.disc_weight: must be >= 0.0, got -1.0"),
    ("disc_start = 2 ", "disc_start = -5 ", "iframe_training.disc_start: must be >= 0, got -5"),
    ('recon_loss = "l1"', 'recon_loss = "l2"', "iframe_training.recon_loss: must be 'l1' or 'mse', got 'l2'"),
    ('type = "rvq"\nconfig', 'type = "vqgan"\nconfig',
     "iframe_training.strategy: applies to type 'rvq' only, not 'vqgan'"),
    ("recon_loss = \"l1\"", "recon_loss = \"l1\"\nquality = 3",
     "iframe_training.quality: applies to type 'compressai' only, not 'rvq'"),
    ("codebook_weight = 1.0", "codebok_weight = 1.0", "iframe_training.codebok_weight: unknown key; did you mean "
                                                       "'codebook_weight'?"),
    ('type = "rvq"\nconfig', 'type = "h264"\nconfig',
     "iframe_training.type: must be one of 'vqgan', 'rvq', 'compressai', got 'h264'"),
    ("crop_size = 64\nsteps_per_epoch = 4", "crop_size = 128\nsteps_per_epoch = 4",
     "iframe_training.crop_size: the I-frame steps crop 128x128 from frames of the synthetic clips (96x96); "
     "use a crop_size <= 96 in [iframe_training]"),
])
def test_bad_iframe_training_is_one_line_naming_the_key(old, new, expected):
    assert error(edit(old, new)).startswith(f"{SRC}: {expected}")


@pytest.mark.parametrize("old, new, expected", [
    ('type = "rvq"\nlayers = 8', 'type = "vqgan"',
     "i_frame.type: must be 'rvq', the codec [iframe_training] trains, got 'vqgan'"),
    ('type = "rvq"\nlayers = 8', 'type = "rvq"\ncheckpoint = "mine.pth"',
     "i_frame.checkpoint: not with [iframe_training]: the P-frame steps use the codec it trains"),
    ("layers = 8", "layers = 0", "i_frame.layers: must be >= 1, got 0"),
    ("i_frame_layers = 2 ", "i_frame_layers = 0 ", "tracks[0].i_frame_layers: must be >= 1, got 0"),
    ('strategy = "progressive_then_end_to_end"', 'strategy = "progressive"',
     "i_frame.layers: 8 is deeper than the codec [iframe_training] trains (progressive to 4 layers)"),
    ("[[tracks]]\nlambda = 256", '[[tracks]]\nname = "iframe"\nlambda = 256',
     'tracks[0].name: "iframe" is the scope of the I-frame steps'),
])
def test_bad_p_frame_i_frame_settings_are_one_line_naming_the_key(old, new, expected):
    assert error(edit(old, new)).startswith(f"{SRC}: {expected}")


def test_a_track_depth_needs_an_rvq_i_frame():
    smoke = (REPO / "curricula" / "smoke.toml").read_text()
    text = edit("quality_index = 4", "quality_index = 4\ni_frame_layers = 2", smoke)
    assert error(text) == (f"{SRC}: tracks[0].i_frame_layers: applies only to an RVQ I-frame ([i_frame] type = "
                           "\"rvq\"); the P-frame steps use 'opencv'")


def test_a_vq_i_frame_that_is_neither_trained_nor_pointed_to_is_refused():
    smoke = (REPO / "curricula" / "smoke.toml").read_text()
    text = edit('type = "opencv"                # no weights needed\ncodec = "jpeg"\nquality = 90',
                'type = "rvq"\nconfig = "tiny_rvq_f16"', smoke)
    assert error(text) == (f"{SRC}: i_frame.checkpoint: missing; the P-frame steps need a trained VQ codec: point "
                           "config and checkpoint at one, or add [iframe_training] to train it in this curriculum")


def test_the_readmes_iframe_training_example_is_valid():
    """The README's [iframe_training] example, inside a minimal curriculum, loads and expands."""
    doc = (REPO / "README.md").read_text(encoding="utf-8")
    section = doc.split("### Training the I-frame codec", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    text = ('name = "readme"\n' + example +
            '\n[data]\ntrain_dir = "data/train"\nval_dir = "data/val"\n\n[[stages]]\nstage = 1\ngops = [2]\nepochs = 1\n')
    cur, steps = steps_of(text)
    assert [s.id for s in steps] == ["iframe-p2", "iframe-p4", "iframe-p6", "iframe-p8", "iframe-e2e", "l256-s1g2"]
    assert steps[-1].train_flags["rvq_layers"] == 2 and cur.i_frame.layers == 8
