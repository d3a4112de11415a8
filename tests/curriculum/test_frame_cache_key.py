"""``[data] frame_cache``: the trainer's --frame_cache in every P-frame step's command,
and, since it leaves the samples alone, no step's config hash changes with it."""

from __future__ import annotations

from pathlib import Path

from dcvc_bench.curriculum import expand, parse_curriculum, step_config_hash
from dcvc_bench.curriculum.command import render_flags

FULL = (Path(__file__).resolve().parents[2] / "curricula" / "full.toml").read_text()
WITH_CACHE = FULL.replace('val_dir = "data/val"', 'val_dir = "data/val"\nframe_cache = "cache/frames"', 1)


def test_the_key_reaches_every_pframe_step_and_keeps_the_hashes():
    assert WITH_CACHE != FULL
    plain, cached = parse_curriculum(FULL), parse_curriculum(WITH_CACHE)
    steps, cached_steps = expand(plain), expand(cached)
    for step, cached_step in zip(steps, cached_steps):
        argv = render_flags(cached_step.train_flags)
        assert argv[argv.index("--frame_cache") + 1] == "cache/frames"
        assert "--frame_cache" not in render_flags(step.train_flags)
        assert step_config_hash(cached, cached_step) == step_config_hash(plain, step)
