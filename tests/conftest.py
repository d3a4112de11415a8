"""Shared pytest fixtures. Keep this file free of module-level torch imports: the
control-plane tests (curriculum, runner, tui) must not pay for loading torch."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_clips(tmp_path_factory):
    """A folder with two small synthetic MP4 clips (96x64 px, 12 frames each, seed 0):
    ``synth_000.mp4`` and ``synth_001.mp4``. Shared by the whole session: read it, never
    write into it."""
    from dcvc_bench.data.synth import write_synthetic_clips

    folder = tmp_path_factory.mktemp("synthetic_clips")
    write_synthetic_clips(folder, videos=2, frames=12, size=(96, 64), seed=0)
    return folder


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """Give every test the torch thread count it found. Many tests pin one thread for
    speed; one that forgot to restore it made the in-process half of the resume-exactness
    tests run on 1 thread and their subprocess half on 2, so float sums differed in the
    last bit. torch is only consulted when some test has already imported it."""
    import sys

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
