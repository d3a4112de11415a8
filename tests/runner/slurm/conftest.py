"""A live Slurm for the tests of real submission (``.ci/slurm/up`` brings one up).

Locally the tests that need one skip, with the reason, when ``sbatch`` is absent or the
cluster does not answer; with ``DCVC_BENCH_REQUIRE_SLURM=1`` (set by ``.ci/run``) they fail
instead, so CI cannot pass without having submitted real jobs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRE_ENV = "DCVC_BENCH_REQUIRE_SLURM"


def _problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (no Slurm on this machine; .ci/slurm/up brings one up)"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo does not answer: {exc}"
    states = done.stdout.split()
    if done.returncode != 0 or not any(s.rstrip("*~#") in ("idle", "mixed", "allocated") for s in states):
        return f"no Slurm node is up (sinfo: {(done.stdout + done.stderr).strip()[:200]!r})"
    return None


@pytest.fixture(scope="session")
def slurm() -> None:
    """Skip (or, when required, fail) unless a Slurm cluster with an up node answers."""
    problem = _problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
    pytest.skip(problem)
