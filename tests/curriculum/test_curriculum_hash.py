"""A step's config hash: same numbers, same hash; anything that changes the maths, a new one."""

from __future__ import annotations

from pathlib import Path

from dcvc_bench.curriculum import expand, parse_curriculum, step_config_hash

REPO = Path(__file__).resolve().parents[2]
FULL = (REPO / "curricula" / "full.toml").read_text()
SMOKE = (REPO / "curricula" / "smoke.toml").read_text()


def hashes(text: str, data_dirs=None) -> list[str]:
    cur = parse_curriculum(text)
    return [step_config_hash(cur, s) for s in expand(cur, data_dirs)]


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_hash_is_a_sha256_and_differs_per_step():
    values = hashes(FULL)
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in values)
    assert len(set(values)) == len(values)


def test_cosmetic_changes_keep_every_hash():
    base = hashes(FULL)
    for old, new in [('name = "full"', 'name = "renamed"'), ('output_dir = "runs"', 'output_dir = "/scratch/runs"'),
                     ("num_workers = 4", "num_workers = 16"),
                     ("num_processes = 1", "num_processes = 1\ncpu_threads_per_process = 7\ngpu_ids = [3]"),
                     ("retries = 2 ", "retries = 5 "), ("# The DCVC", "#   The DCVC")]:
        assert hashes(edited(FULL, old, new)) == base, (old, new)


def test_synthetic_data_location_is_cosmetic_but_its_recipe_is_not():
    base = hashes(SMOKE)
    assert hashes(SMOKE, (Path("/elsewhere/train"), Path("/elsewhere/val"))) == base
    assert hashes(edited(SMOKE, 'device = "cpu"', 'device = "auto"')) == base
    changed = hashes(edited(SMOKE, "seed = 0", "seed = 1"))
    assert all(a != b for a, b in zip(base, changed))


def test_lambda_epochs_and_lr_change_the_hash():
    base = hashes(FULL)
    assert all(a != b for a, b in zip(base, hashes(edited(FULL, "\nlambda = 2048", "\nlambda = 1024"))))
    assert all(a != b for a, b in zip(base, hashes(edited(FULL, "\nlearning_rate = 1e-4", "\nlearning_rate = 2e-4"))))
    assert all(a != b for a, b in zip(base, hashes(edited(FULL, "num_processes = 1", "num_processes = 2"))))
    assert all(a != b for a, b in zip(base, hashes(edited(FULL, 'mixed_precision = "no"', 'mixed_precision = "bf16"'))))
    more_epochs = hashes(edited(FULL, "stage = 1\ngops = [2, 3, 5, 7]\nepochs = 10",
                                "stage = 1\ngops = [2, 3, 5, 7]\nepochs = [10, 12, 10, 10]"))
    assert [a != b for a, b in zip(base, more_epochs)] == [False, True] + [False] * 15


def test_reset_lr_changes_only_the_steps_that_force_it():
    base = hashes(FULL)
    changed = hashes(edited(FULL, "reset_learning_rate = 1e-4", "reset_learning_rate = 5e-5"))
    cur = parse_curriculum(FULL)
    forced = [not s.first_in_stage for s in expand(cur)]
    assert [a != b for a, b in zip(base, changed)] == forced


def test_stage_override_changes_only_that_stage():
    base = hashes(FULL)
    changed = hashes(edited(FULL, "scheduler_patience = 3", "scheduler_patience = 5"))
    assert [a != b for a, b in zip(base, changed)] == [False] * 12 + [True] * 5


def test_adding_a_track_keeps_the_first_tracks_hashes():
    two = FULL + "\n[[tracks]]\nlambda = 512\nquality_index = 2\n"
    assert hashes(two)[:17] == hashes(FULL)


def test_the_i_frame_spec_keeps_the_hashes_of_runs_started_before_it():
    """A run recorded before the I-frame spec (OpenCV's format was passed as
    --i_frame_model_name): its finished steps must not look changed, so none re-runs."""
    import json

    fixture = REPO / "tests" / "tui" / "fixtures" / "smoke-run"
    cur = parse_curriculum((fixture / "curriculum.toml").read_text())
    recorded = {r["id"]: r["config_hash"] for r in json.loads((fixture / "ledger.json").read_text())["steps"]}
    steps = expand(cur)
    assert steps[0].train_flags["i_frame_codec"] == "jpeg"  # the trainer is given the new flag ...
    assert {s.id: step_config_hash(cur, s) for s in steps} == recorded  # ... and the old hash stays
    other = parse_curriculum((fixture / "curriculum.toml").read_text().replace('codec = "jpeg"', 'codec = "webp"'))
    assert all(step_config_hash(other, s) != recorded[s.id] for s in expand(other))
