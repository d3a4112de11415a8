"""FID through torch-fidelity with the Inception weights from a local file only: unavailable
(naming the file and folder) without it, a real, finite value with a file of the right
format, refused below the frames it needs."""

from __future__ import annotations

import math
import pickle
from unittest import mock

import pytest
import torch

from dcvc_bench.errors import UserError
from dcvc_bench.eval.fid import (
    FIDScorer,
    InceptionFeatures,
    default_weights_path,
    fid_available,
    frechet_distance,
    inception_file_name,
    min_frames,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_inception_state_dict() -> dict[str, torch.Tensor]:
    """torch-fidelity's own InceptionV3, randomly initialised, as its state dict: a weights
    file of the right format. Building the class always loads weights, so only while it is
    built here (to make the file) is its loading skipped."""
    from torch_fidelity import feature_extractor_inceptionv3 as fe

    torch.manual_seed(0)
    with mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None), \
            mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}):
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    return net.state_dict()


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    """A TORCH_HOME whose hub/checkpoints folder holds the file FID looks for."""
    home = tmp_path_factory.mktemp("torch_home")
    path = home / "hub" / "checkpoints" / inception_file_name()
    path.parent.mkdir(parents=True)
    state = random_inception_state_dict()
    torch.save(state, path)
    return home, path, state


def frames(n: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 48, 64, generator=g)
    return (base * scale * 255).round().to(torch.uint8)


def test_without_the_file_fid_is_unavailable_naming_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert inception_file_name() == "weights-inception-2015-12-05-6726825d.pth"
    folder = tmp_path / "hub" / "checkpoints"
    assert default_weights_path() == folder / inception_file_name()
    ok, reason, _ = fid_available()
    assert not ok and reason == (f"FID unavailable: place {inception_file_name()} in {folder} (torch-fidelity's "
                                 "InceptionV3 weights; the folder follows $TORCH_HOME, or pass --fid-weights PATH; "
                                 "never downloaded here)")
    with pytest.raises(UserError, match=f"^FID unavailable: place {inception_file_name()} in "):
        InceptionFeatures()
    scorer = FIDScorer()
    scorer.plan(10_000)
    assert not scorer.active and scorer.result("x") == (None, reason)
    ok, reason, _ = fid_available(tmp_path / "nope.pth")
    assert not ok and "--fid-weights" in reason and "nope.pth" in reason


def test_a_local_weights_file_gives_a_real_finite_fid(inception_file, monkeypatch):
    home, path, state = inception_file
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert fid_available() == (True, "", path)
    features = InceptionFeatures(dims=64)
    # the file's weights are the ones in use
    assert torch.equal(features.net.state_dict()["Conv2d_1a_3x3.conv.weight"], state["Conv2d_1a_3x3.conv.weight"])
    real, fake = frames(65, 1), frames(65, 2, scale=0.5)
    fr, ff = features(real), features(fake)
    assert fr.shape == ff.shape == (65, 64) and fr.dtype == torch.float64
    value = frechet_distance(fr, ff)
    assert math.isfinite(value) and value > 0
    assert abs(frechet_distance(fr, fr)) < 1e-6 * max(1.0, value)
    assert frechet_distance(fr, features(frames(65, 3))) < value  # same distribution: closer than darkened frames
    # the standard 2048-d features come out of the same file
    assert InceptionFeatures(path, dims=2048)(real[:2]).shape == (2, 2048)


def test_fewer_frames_than_fid_needs_are_refused_naming_the_minimum(inception_file):
    _, path, _ = inception_file
    assert min_frames(2048) == 2049 and min_frames(64) == 65
    scorer = FIDScorer(path, 2048)
    scorer.plan(2048)
    assert not scorer.active
    assert scorer.result("p")[1] == ("FID unavailable: at most 2048 frames evaluated; FID with 2048-d features needs "
                                     "at least 2049 (more --frames or --videos clips)")
    with pytest.raises(ValueError, match="at least 65"):
        frechet_distance(torch.rand(64, 64, dtype=torch.float64), torch.rand(65, 64, dtype=torch.float64))
    # planned enough, but the clips were shorter: refused after, not reported
    scorer = FIDScorer(path, 64)
    scorer.plan(65)
    assert scorer.active
    scorer.originals("clip", frames(10, 1))
    for i in range(10):
        scorer.decoded("p", frames(1, i).float() / 255)
    assert scorer.result("p") == (None, "FID unavailable: 10 frames evaluated; FID with 64-d features needs at least "
                                        "65 (more --frames or --videos clips)")
    with pytest.raises(UserError, match="--fid-dims 100"):
        FIDScorer(path, 100)


class _Code:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_weights_file_with_code_or_another_network_is_refused(tmp_path):
    code = tmp_path / "code.pth"
    with open(code, "wb") as fh:
        pickle.dump({"w": _Code()}, fh)
    with pytest.raises(UserError, match="weights_only=True"):
        InceptionFeatures(code, dims=64)
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(UserError, match="not torch-fidelity's InceptionV3"):
        InceptionFeatures(other, dims=64)


def test_the_scorer_of_a_point_hands_every_scored_frame_to_fid(inception_file):
    """What every evaluator scores, one frame at a time (``frame``) or a whole clip
    (``clip``), is its point's for FID; the evaluation's own scoring (unbound) is nobody's."""
    from dcvc_bench.eval.scoring import Scorer

    _, path, _ = inception_file
    fid = FIDScorer(path, 64)
    fid.plan(65)
    scorer = Scorer(torch.device("cpu"), fid=fid)
    original = frames(70, 1)
    scorer.originals("clip", original)
    scorer.originals("clip", original)  # once per clip
    decoded = frames(70, 2, scale=0.5)
    scorer.clip(original, decoded)  # not a point's: ignored
    by_frame, by_clip = scorer.for_point("a"), scorer.for_point("b")
    for t in range(70):
        by_frame.frame(original[t:t + 1].float() / 255, decoded[t:t + 1].float() / 255)
    by_clip.clip(original, decoded)
    a, b = scorer.fid_result("a"), scorer.fid_result("b")
    assert a[1] is None and math.isfinite(a[0]) and a[0] > 0
    assert a[0] == pytest.approx(b[0], rel=1e-9)  # the same frames, scored either way
    assert scorer.fid_result("nobody")[0] is None
    assert Scorer(torch.device("cpu")).fid_result("a") == (None, "FID not computed")
