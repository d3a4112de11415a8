"""The latent-collapse rule (dcvc_bench.health), torch-free."""

from __future__ import annotations

import subprocess
import sys

from dcvc_bench.health import COLLAPSE_BELOW, collapses, stage_of


def _eval(epoch: int, y: float, mv_y: float = 0.5) -> dict:
    stats = {"mean_abs": 0.1, "rate_share": 0.25}
    return {"event": "eval", "epoch": epoch, "latents": {
        "y": {"nonzero": y, **stats}, "z": {"nonzero": 0.2, **stats},
        "mv_y": {"nonzero": mv_y, **stats}, "mv_z": {"nonzero": 0.2, **stats}}}


def test_a_collapsed_y_is_named_with_the_epoch_it_started_and_what_to_check():
    evals = [_eval(1, 0.3), _eval(2, 0.0), _eval(3, 0.0), _eval(4, 0.0)]
    (found,) = collapses(evals, stage=4)
    assert found.latent == "y" and found.since_epoch == 2
    assert found.message() == "y: 0 % non-zero symbols since epoch 2 — the P-frame codes no residual"
    assert "stage order" in found.warning() and "λ" in found.warning() and "SpyNet" in found.warning()


def test_only_the_newest_unbroken_run_counts():
    assert collapses([_eval(1, 0.0), _eval(2, 0.4)], stage=4) == []          # recovered
    (found,) = collapses([_eval(1, 0.0), _eval(2, 0.4), _eval(3, COLLAPSE_BELOW / 2)], stage=4)
    assert found.since_epoch == 3 and "0.05 %" in found.message()
    assert collapses([_eval(1, COLLAPSE_BELOW)], stage=4) == []              # at the bound: alive


def test_motion_collapse_and_stage_rules():
    """A latent is watched in the stages whose loss puts a rate on it."""
    (found,) = collapses([_eval(1, 0.3, mv_y=0.0)], stage=1)
    assert found.latent == "mv_y" and "no motion" in found.message()
    both = [_eval(1, 0.0, mv_y=0.0)]
    assert [c.latent for c in collapses(both, stage=4)] == ["y", "mv_y"]
    assert [c.latent for c in collapses(both, stage=3)] == ["y"]      # motion frozen
    assert collapses(both, stage=2) == []                             # no rate: y not used yet, not collapsed
    assert [c.latent for c in collapses(both, stage=1)] == ["mv_y"]   # residual branch untrained
    assert [c.latent for c in collapses(both)] == ["y", "mv_y"]       # stage unknown: both


def test_events_without_latent_statistics_say_nothing():
    assert collapses([{"event": "eval", "epoch": 1, "psnr": 30.0}, {"latents": "junk"}], stage=4) == []
    assert collapses([{"event": "eval", "epoch": 1, "latents": {"y": {"nonzero": "x"}}}], stage=4) == []
    assert stage_of([{"event": "train"}, {"event": "step_start", "stage": 3}]) == 3
    assert stage_of([]) is None


def test_the_module_is_torch_free():
    code = "import sys, dcvc_bench.health; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
