"""The one GOP-coding loop, shared by training, estimation evaluation and real coding.

Frame 0 of each intra period is coded by the I-frame codec; every other frame by the
P-frame coder with the previous *decoded* frame as reference. The loop is a generator so
the caller decides what happens between frames: training steps the optimizer after each
P-frame (reference detached, the default) or sums the loss over the GOP
(``detach_reference=False``, stage-4 GOP optimisation); evaluation only records metrics;
real coding (:mod:`dcvc_bench.codec.video`) plugs in functions that write bytes and return
what the decoder will show. The decoder, driven by the stream, checks its frame types
against :func:`is_intra_frame`, the rule this loop follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # torch is imported when frames are coded: the container parser uses is_intra_frame
    import torch

IFrameFn = Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]   # x -> (x_hat, bits (B,))
PFrameFn = Callable[["torch.Tensor", "torch.Tensor"], dict[str, Any]]          # (ref, x) -> model output
ReconFn = Callable[[dict[str, Any]], "torch.Tensor"]                           # output -> decoded frame


@dataclass
class CodedFrame:
    index: int
    kind: str                  # "I" or "P"
    x: torch.Tensor            # original frame, B×3×H×W as given (float in [0,1], or uint8)
    decoded: torch.Tensor      # what the decoder shows (clamped to [0,1]); next reference
    bits: torch.Tensor         # (B,) bits of this frame
    output: dict[str, Any] | None = None   # P-frame output of the coding function (training: likelihoods, bpp terms)


def is_intra_frame(t: int, intra_period: int | None) -> bool:
    """Frame ``t`` is an I-frame: frame 0, and every ``intra_period``-th frame
    (None or -1: frame 0 only)."""
    return t == 0 or (intra_period not in (None, -1) and t % intra_period == 0)


def code_frames(frames: torch.Tensor, iframe: IFrameFn, pframe: PFrameFn, recon: ReconFn,
                intra_period: int | None = None,
                detach_reference: bool = True) -> Iterator[CodedFrame]:
    """Code ``frames`` (B×T×3×H×W in [0,1]) frame by frame.

    Frames reach ``iframe``/``pframe`` one at a time exactly as stored, so a caller may
    pass uint8 frames and convert each one when it is coded (real coding does: a long
    clip in float would need four times the memory).

    ``intra_period``: an I-frame every N frames (None or -1: only frame 0).
    The decoded frame is clamped to [0,1] — a decoder outputs pixels — and becomes the
    reference of the next P-frame (detached unless ``detach_reference`` is False).
    """
    import torch

    ref: torch.Tensor | None = None
    for t in range(frames.shape[1]):
        x = frames[:, t]
        if ref is None or is_intra_frame(t, intra_period):
            with torch.no_grad():
                x_hat, bits = iframe(x)
            decoded = x_hat.clamp(0.0, 1.0)
            coded = CodedFrame(t, "I", x, decoded, bits)
        else:
            out = pframe(ref, x)
            decoded = recon(out).clamp(0.0, 1.0)
            bits = sum(out["bits"].values())
            coded = CodedFrame(t, "P", x, decoded, bits, out)
        ref = decoded.detach() if detach_reference else decoded
        yield coded


def decoded_picture(x_hat: torch.Tensor) -> torch.Tensor:
    """What a decoder shows for the reconstruction ``x_hat``: 8-bit pixels
    (``round(clamp(x, 0, 1) · 255)``), back in [0, 1] as floats. It is also the next
    frame's reference, in real coding and in evaluation's estimate alike."""
    return (x_hat.clamp(0.0, 1.0) * 255.0).round() / 255.0
