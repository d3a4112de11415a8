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


@pytest.fixture(scope="session")
def trained_rvq_f2(tmp_path_factory):
    """tiny_rvq_f2 (8 layers, K=16) trained 300 steps on 32×32 crops of 64×64 synthetic
    frames, seed 0, on one thread: the checkpoint's path. One training for the whole
    session (tests/models/test_vq_coding.py and tests/eval/test_iframe_eval_vq.py trained
    exactly this each); read it, never write into it. f=2 because on a CPU a brief run of
    the f=8/16 networks stays at the mean-colour plateau, where depth cannot show."""
    import torch

    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR
    from dcvc_bench.train.vq_brief import train_vq_briefly

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path_factory.mktemp("trained_rvq_f2") / "rvq.pth"
        train_vq_briefly(CONFIG_DIR / "tiny_rvq_f2.json", path, iterations=300, crop=32, seed=0)
        return path
    finally:
        torch.set_num_threads(before)
