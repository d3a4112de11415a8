"""FID (Fréchet Inception Distance) between original and decoded frames, through
torch-fidelity, with the Inception weights from a local file only.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` ("inception-v3-compat",
the 2015-12-05 TensorFlow Inception ported bit-exactly; torchmetrics' FID uses the same
class and file). Its weights file is :data:`INCEPTION_FILE`, looked for as
``--fid-weights PATH`` or in torch hub's checkpoints folder (``$TORCH_HOME/hub/checkpoints``,
default ``~/.cache/torch/hub/checkpoints``), where ``torch.hub`` would cache it. Nothing is
ever downloaded and a random network never gives a number: without the file FID is
"unavailable: place FILE in DIR". The file is checked with ``torch.load(...,
weights_only=True)`` (plain tensors only) before torch-fidelity reads it.

Convention (:data:`CONVENTION`): whole frames, each resized to 299×299 by torch-fidelity's
TensorFlow-compatible bilinear resize (no crops, no patches); 2048-d pool features by
default; the statistics of all original frames against those of all decoded frames of one
RD point, pooled over every evaluated clip. With d-dim features the covariance has rank
at most N − 1, so FID needs at least d + 1 frames (:func:`min_frames`): fewer is refused,
not reported. The statistics and the distance are torch-fidelity's own
(``fid_features_to_statistics``, ``fid_statistics_to_metric``), computed in float64.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from dcvc_bench.errors import UserError
from dcvc_bench.evaldoc import FIDInfo, fid_doc

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity 0.2+'s release asset
FID_DIMS = (64, 192, 768, 2048)  # the feature layers torch-fidelity's InceptionV3 provides
DEFAULT_DIMS = 2048
CONVENTION = ("FID: torch-fidelity InceptionV3 (2015-12-05 TF weights, local file only), whole frames resized to "
              "299x299 (TF-compatible bilinear), {dims}-d features; all original vs all decoded frames of an RD "
              "point, pooled over clips; needs at least {min_frames} frames (feature dimension + 1)")


def inception_file_name() -> str:
    """The file name torch-fidelity's Inception weights have (from its URL when importable)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        return os.path.basename(URL_INCEPTION_V3)
    except Exception:  # not installed or another layout: the long-stable name
        return INCEPTION_FILE


def default_weights_path() -> Path:
    """Where the weights are looked for without ``--fid-weights``: torch hub's checkpoints
    folder (follows ``$TORCH_HOME``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / inception_file_name()


def min_frames(dims: int = DEFAULT_DIMS) -> int:
    """Frames FID needs with ``dims``-d features: a full-rank covariance needs dims + 1."""
    return int(dims) + 1


def check_dims(dims: int) -> int:
    if dims not in FID_DIMS:
        raise UserError(f"--fid-dims {dims}: torch-fidelity's InceptionV3 gives {', '.join(map(str, FID_DIMS))}-d "
                        f"features (the standard FID uses {DEFAULT_DIMS})")
    return int(dims)


def fid_available(weights: Optional[Path] = None) -> tuple[bool, str, Path]:
    """(True, "", path) when FID can be computed from local files; else (False, why, path)
    with a "FID unavailable: place FILE in DIR" line (or what else is missing)."""
    path = Path(weights).expanduser() if weights is not None else default_weights_path()
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as exc:
        return False, f"FID unavailable: the torch-fidelity package is not importable ({exc}); pip install torch-fidelity", path
    if weights is not None and not path.is_file():
        return False, f"FID unavailable: --fid-weights {path}: no such file (torch-fidelity's {inception_file_name()})", path
    if not path.is_file():
        return False, (f"FID unavailable: place {path.name} in {path.parent} (torch-fidelity's InceptionV3 weights; "
                       "the folder follows $TORCH_HOME, or pass --fid-weights PATH; never downloaded here)"), path
    return True, "", path


class InceptionFeatures:
    """Inception pool features of uint8 frames, from the local weights file only."""

    def __init__(self, weights: Optional[Path] = None, dims: int = DEFAULT_DIMS,
                 device: str | torch.device = "cpu"):
        ok, reason, path = fid_available(weights)
        if not ok:
            raise UserError(reason)
        self.dims = check_dims(dims)
        self.path = path
        _check_plain_weights(path)
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        try:  # torch-fidelity loads the (already checked) file itself, then load_state_dict strictly
            net = FeatureExtractorInceptionV3("inception-v3-compat", [str(self.dims)],
                                              feature_extractor_weights_path=str(path))
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            detail = " ".join(str(exc).strip().splitlines()[:2])[:300]
            raise UserError(f"{path} is not torch-fidelity's InceptionV3 state dict: {detail}") from None
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()

    @torch.no_grad()
    def __call__(self, frames_u8: Tensor) -> Tensor:
        """B×3×H×W uint8 RGB -> (B, dims) float64 features on the CPU."""
        if frames_u8.dtype != torch.uint8 or frames_u8.dim() != 4 or frames_u8.shape[1] != 3:
            raise ValueError(f"expected B×3×H×W uint8 frames, got {tuple(frames_u8.shape)} {frames_u8.dtype}")
        (features,) = self.net(frames_u8.to(self.device))
        return features.detach().to("cpu", torch.float64)


def _check_plain_weights(path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a corrupt zip, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{path} cannot be loaded as plain weights (weights_only=True): {first}") from None
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict (names to tensors) of torch-fidelity's InceptionV3")


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """FID of two feature sets (N×d each, N >= d + 1), by torch-fidelity's statistics and
    distance, in float64."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    for name, feats in (("original", real), ("decoded", fake)):
        if feats.dim() != 2 or feats.shape[0] < min_frames(feats.shape[1]):
            raise ValueError(f"FID needs at least {min_frames(feats.shape[-1])} {name} frames for "
                             f"{feats.shape[-1]}-d features, got {feats.shape[0]}")
    stats = [fid_features_to_statistics(f.detach().cpu().double()) for f in (real, fake)]
    return float(fid_statistics_to_metric(stats[0], stats[1], verbose=False)["frechet_inception_distance"])


class FIDScorer:
    """FID per RD point over an evaluation: the original frames' features once per clip,
    each point's decoded frames as they are made; :meth:`result` at the end.

    ``enabled``: None (the default) computes FID when the weights are here and enough
    frames are evaluated, else says why not; True (``--fid``) requires it: no weights or
    too few frames is a one-line :class:`~dcvc_bench.errors.UserError` before anything is
    evaluated; False (``--no-fid``) never computes it."""

    def __init__(self, weights: Optional[Path] = None, dims: int = DEFAULT_DIMS, device: torch.device | str = "cpu",
                 enabled: Optional[bool] = None):
        self.dims = check_dims(dims)
        self.needed = min_frames(self.dims)
        self.device = torch.device(device)
        self.required = enabled is True
        self.features: Optional[InceptionFeatures] = None
        self.path: Optional[Path] = None
        ok, reason, path = fid_available(weights)
        if self.required and not ok:
            raise UserError(f"--fid: {reason}")
        self._weights = path if ok else None
        self.reason: Optional[str] = "FID not computed (--no-fid)" if enabled is False else (None if ok else reason)
        self._originals: dict[str, Tensor] = {}
        self._decoded: dict[str, list[Tensor]] = {}

    def plan(self, frames: int, exact: Optional[Callable[[], int]] = None) -> None:
        """Before evaluating: ``frames`` is the most each point can get (``--frames`` ×
        clips). Loads the network when FID can be had from them; otherwise records why not,
        and nothing is extracted. When that bound is enough, ``exact`` (the frames the clips
        really hold, counted by decoding them) decides, so that short clips are told (or,
        with ``--fid``, refused) now rather than after the evaluation."""
        if self.reason is not None or self._weights is None:
            return
        if frames >= self.needed and exact is not None:
            frames, qualifier = exact(), ""
        else:
            qualifier = "at most "
        if frames < self.needed:
            self.reason = self._too_few(frames, qualifier)
            if self.required:
                raise UserError(f"--fid: {self.reason}")
            return
        self.features, self.path = InceptionFeatures(self._weights, self.dims, self.device), self._weights

    def _too_few(self, frames: int, qualifier: str = "") -> str:
        return (f"FID unavailable: {qualifier}{frames} frames evaluated; FID with {self.dims}-d features needs at least "
                f"{self.needed} (more --frames or --videos clips)")

    @property
    def active(self) -> bool:
        return self.features is not None

    def originals(self, clip: str, frames_u8: Tensor) -> None:
        """Features of a clip's original frames (T×3×H×W uint8), once per clip."""
        if self.features is not None and clip not in self._originals:
            self._originals[clip] = torch.cat([self.features(frames_u8[i:i + 8]) for i in range(0, len(frames_u8), 8)])

    def decoded(self, point: str, frame: Tensor) -> None:
        """Decoded frames of ``point`` (B×3×H×W float in [0, 1]), scored as 8 bits."""
        if self.features is not None:
            self.decoded_u8(point, (frame.detach().clamp(0, 1) * 255.0).round().to(torch.uint8))

    def decoded_u8(self, point: str, frames_u8: Tensor) -> None:
        """Decoded frames of ``point`` (B×3×H×W uint8)."""
        if self.features is not None:
            self._decoded.setdefault(point, []).append(self.features(frames_u8))

    def result(self, point: str) -> tuple[Optional[float], Optional[str]]:
        """(FID, None), or (None, why not)."""
        if self.features is None:
            return None, self.reason
        fake = torch.cat(self._decoded.get(point, [])) if self._decoded.get(point) else torch.empty(0, self.dims)
        real = torch.cat(list(self._originals.values())) if self._originals else torch.empty(0, self.dims)
        if min(len(fake), len(real)) < self.needed:
            return None, self._too_few(min(len(fake), len(real)))
        return frechet_distance(real, fake), None

    def describe(self) -> FIDInfo:
        """The document's ``fid`` section."""
        return fid_doc(available=self.features is not None, reason=self.reason, dims=self.dims,
                       min_frames=self.needed, weights=str(self.path) if self.path else None,
                       convention=CONVENTION.format(dims=self.dims, min_frames=self.needed))


__all__ = ["CONVENTION", "DEFAULT_DIMS", "FID_DIMS", "FIDScorer", "INCEPTION_FILE", "InceptionFeatures",
           "default_weights_path", "fid_available", "frechet_distance", "inception_file_name", "min_frames"]
