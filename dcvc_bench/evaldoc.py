"""The documents `dcvc-bench eval` writes, as typed, torch-free data: the one schema for
the writer (:mod:`dcvc_bench.eval.run_eval`, :mod:`~dcvc_bench.eval.iframe_eval`) and
every reader (the TUI), as :mod:`dcvc_bench.events` is for events.

``eval/<timestamp>-<mode>.json`` and ``eval/latest.json`` (format ``dcvc-bench-eval``,
:class:`EvalDocument`): mode, settings, conventions, LPIPS availability, the baselines'
settings, the clips (:class:`ClipInfo`), one result per RD point (:class:`ResultDoc`:
its overall and per-clip :class:`Summary`, the clips' with ``per_frame`` records) and
the RD section (:class:`RDSection`). ``eval/<timestamp>-<mode>-rd.json`` and
``eval/rd.json`` (format ``dcvc-bench-rd``, :class:`RDDocument`): the RD curves and
BD figures alone, for the TUI's RD view. All JSON is standard (NaN/inf become null).

Writing: :func:`eval_document`, :func:`result_doc`, :func:`rd_point`, :func:`rd_document`.
Reading is tolerant: :func:`read_eval_results` and :func:`read_rd_view` turn a missing or
mistyped field into None or "" (shown as "-"), never an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NotRequired, Optional, TypedDict

from dcvc_bench.checkpoints import json_safe

#: Where `dcvc-bench eval` writes into the run folder, and the ``format`` each document carries.
EVAL_LATEST, EVAL_RD = "eval/latest.json", "eval/rd.json"
EVAL_KIND, RD_KIND = "dcvc-bench-eval", "dcvc-bench-rd"
VERSION = 1
MODES = ("estimate", "real", "baselines", "iframe-estimate", "iframe-real")

#: What every number means (written into each document).
CONVENTIONS = {
    "psnr": "RGB PSNR in dB on [0,1]: per frame, then the mean over frames (DCVC convention); "
            "overall = mean over clips",
    "bpp": "bits / (frames x original pixels); padding never counted; real streams include their header",
    "ms_ssim": "pytorch-msssim MS-SSIM, data range 1; reduced scales for small frames (labelled per clip)",
    "lpips": "LPIPS v0.1 AlexNet, only from local weights",
    "missing": "a figure missing for any frame of a clip is missing (null) for the clip, and one missing for "
               "any clip is missing overall: never a mean over the part that has it",
    "estimated_bits": "the exact cost of the symbols the real coder writes (-log2 of its 16-bit CDF "
                      "probabilities, bypass words included), along the real decoded chain; no bitstream "
                      "written; I-frames: the I-frame codec's estimate (exact for OpenCV)",
    "scored_frames": "the 8-bit frames a decoder outputs (estimation, real coding and baselines alike)",
    "rate_gap_percent": "(real BPP - estimated BPP) / estimated BPP x 100, real including the stream header",
}


# --------------------------------------------------------------------------- the schema


class FramePart(TypedDict):
    count: int
    bpp: Optional[float]
    psnr: Optional[float]


class FirstP(TypedDict):
    index: Optional[int]          # None overall when the clips' P1 (P2, P3) sit at different indexes
    bpp: Optional[float]
    psnr: Optional[float]


class Summary(TypedDict):
    """A clip's figures (:func:`dcvc_bench.eval.scoring.summarize_clip`) or the overall ones
    (:func:`~dcvc_bench.eval.scoring.summarize_overall`, which adds ``clips``)."""

    frames: int
    bpp: float
    psnr: Optional[float]
    ms_ssim: Optional[float]
    lpips: Optional[float]
    i_frame: FramePart
    p_frame: FramePart
    p_first3: list[FirstP]
    bpp_estimate: Optional[float]     # the estimate beside real bits (learned --real only)
    rate_gap_percent: Optional[float]
    enc_ms_per_frame: Optional[float]
    dec_ms_per_frame: Optional[float]
    bits: NotRequired[float]          # clips: all bits, header included
    header_bits: NotRequired[float]
    clips: NotRequired[int]           # overall: how many clips
    per_frame: NotRequired[list[dict[str, Any]]]   # clips: index, kind, bits, bpp, psnr, ms_ssim, lpips?, ...
    stream_bytes: NotRequired[int]    # real coding and baselines
    sha256: NotRequired[str]          # baselines: the stream, its argv and what it read
    command: NotRequired[list[str]]
    command_display: NotRequired[str]
    decode_command: NotRequired[list[str]]
    command_input: NotRequired[str]


class ResultDoc(TypedDict):
    """One RD point: a learned checkpoint, an I-frame codec setting, a baseline QP."""

    id: str
    curve: str
    kind: Literal["learned", "baseline", "iframe"]
    bits: Literal["estimated", "real"]
    source: dict[str, Any]            # where it came from (checkpoint, λ, identity; encoder, QP)
    overall: Summary
    clips: dict[str, Summary]


class ClipInfo(TypedDict):
    name: str
    path: str
    width: int
    height: int
    frames: int
    ms_ssim: str                      # its MS-SSIM variant, e.g. "MS-SSIM (3 scales)"
    lpips: str                        # "LPIPS (alex)" or "unavailable: why"
    colour_roundtrip_psnr: NotRequired[Optional[float]]   # with baselines: the colour path alone


RDPointDoc = TypedDict("RDPointDoc", {
    "label": str, "bpp": float, "psnr": Optional[float], "ms_ssim": Optional[float], "lpips": Optional[float],
    "lambda": Optional[float],        # learned: the track's λ
    "qp": Optional[float],            # baselines: the QP (or CRF)
})


class RDCurveDoc(TypedDict):
    name: str
    kind: str
    bits: str
    points: list[RDPointDoc]          # sorted by BPP


class BDRowDoc(TypedDict):
    codec: str
    anchor: str
    bd_rate_psnr: Optional[float]     # % (negative: fewer bits than the anchor)
    bd_psnr: Optional[float]          # dB
    bd_rate_ms_ssim: Optional[float]  # %, on MS-SSIM's dB scale
    overlap_psnr: Optional[float]
    method: str
    note: Optional[str]               # why a figure is missing, or a narrow overlap


class RDSection(TypedDict):
    anchor: Optional[str]
    bd_method: str
    curves: list[RDCurveDoc]
    bd: list[BDRowDoc]
    ms_ssim_label: NotRequired[str]
    plot: NotRequired[str]            # the PNG written beside the document


class Settings(TypedDict):
    frames: int
    intra_period: int
    real: bool
    ema: bool
    device: str
    videos: Optional[str]


class LPIPSInfo(TypedDict):
    available: bool
    reason: Optional[str]
    net: str


class EvalDocument(TypedDict):
    format: str                       # EVAL_KIND
    version: int
    created: str
    created_unix: float
    mode: str                         # one of MODES
    run: Optional[str]
    settings: Settings
    conventions: dict[str, str]
    lpips: LPIPSInfo
    baselines: Optional[dict[str, Any]]   # colour path, structure, bits (eval.baselines.describe_settings)
    clips: list[ClipInfo]
    results: list[ResultDoc]
    rd: Optional[RDSection]
    notes: list[str]


class RDDocument(TypedDict):
    format: str                       # RD_KIND
    version: int
    created: str
    source: Optional[str]             # the full document's file name
    mode: str
    frames: int
    intra_period: int
    clips: list[str]
    colour_path: Optional[str]
    anchor: Optional[str]
    bd_method: Optional[str]
    ms_ssim_label: Optional[str]
    curves: list[RDCurveDoc]
    bd: list[BDRowDoc]
    plot: Optional[str]


# --------------------------------------------------------------------------- writing


def settings_doc(*, frames: int, intra_period: int, real: bool, ema: bool, device: str,
                 videos: Optional[str]) -> Settings:
    return {"frames": frames, "intra_period": intra_period, "real": real, "ema": ema, "device": device, "videos": videos}


def lpips_doc(available: bool, reason: Optional[str]) -> LPIPSInfo:
    return {"available": available, "reason": reason, "net": "alex"}


def result_doc(id: str, curve: str, kind: str, bits: str, source: dict[str, Any], overall: Summary,
               clips: dict[str, Summary]) -> ResultDoc:
    if kind not in ("learned", "baseline", "iframe") or bits not in ("estimated", "real"):
        raise ValueError(f"result {id!r}: kind {kind!r} / bits {bits!r} is not in the eval document schema")
    return {"id": id, "curve": curve, "kind": kind, "bits": bits, "source": source,  # type: ignore[typeddict-item]
            "overall": overall, "clips": clips}


def rd_point(result: ResultDoc) -> RDPointDoc:
    """A result as a point of its RD curve: its overall figures, λ or QP."""
    o = result["overall"]
    return {"label": result["id"], "bpp": o["bpp"], "psnr": o["psnr"], "ms_ssim": o["ms_ssim"], "lpips": o["lpips"],
            "lambda": result["source"].get("lambda"), "qp": result["source"].get("value")}


def eval_document(*, mode: str, run: Optional[str], settings: Settings, lpips: LPIPSInfo,
                  baselines: Optional[dict[str, Any]], clips: list[ClipInfo], results: list[ResultDoc],
                  rd: Optional[RDSection], notes: list[str]) -> EvalDocument:
    """The whole result document, stamped now."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    return {"format": EVAL_KIND, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "created_unix": time.time(), "mode": mode, "run": run, "settings": settings,
            "conventions": CONVENTIONS, "lpips": lpips, "baselines": baselines, "clips": clips,
            "results": results, "rd": rd, "notes": notes}


def rd_document(doc: EvalDocument, source: Optional[str]) -> RDDocument:
    """The RD view of ``doc`` for the TUI (``eval/rd.json``); ``source``: the full
    document's file name."""
    rd: dict[str, Any] = dict(doc["rd"] or {})
    return json_safe({
        "format": RD_KIND, "version": VERSION, "created": doc["created"], "source": source,
        "mode": doc["mode"], "frames": doc["settings"]["frames"], "intra_period": doc["settings"]["intra_period"],
        "clips": [c["name"] for c in doc["clips"]],
        "colour_path": (doc.get("baselines") or {}).get("colour_path"),
        "anchor": rd.get("anchor"), "bd_method": rd.get("bd_method"), "ms_ssim_label": rd.get("ms_ssim_label"),
        "curves": rd.get("curves", []), "bd": rd.get("bd", []), "plot": rd.get("plot"),
    })


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Figures:
    """One summary of a result: overall (means over clips) or one clip's."""

    name: str                     # "overall" or the clip's name
    frames: int | None
    bpp: float | None
    psnr: float | None
    ms_ssim: float | None
    lpips: float | None
    i_frames: tuple[int | None, float | None, float | None]   # (count, PSNR, BPP)
    p_frames: tuple[int | None, float | None, float | None]
    p_first3: tuple[tuple[float | None, float | None], ...]   # (PSNR, BPP) of P1..P3
    bpp_estimate: float | None    # the entropy models' estimate (real coding only)
    rate_gap_percent: float | None  # (real - estimate) / estimate x 100
    enc_ms: float | None          # per frame
    dec_ms: float | None


@dataclass(frozen=True)
class EvalResult:
    """One RD point of `dcvc-bench eval`: a learned checkpoint, a baseline at one QP, ..."""

    id: str
    curve: str
    kind: str                     # learned | baseline | iframe
    bits: str                     # estimated | real
    overall: Figures
    clips: tuple[Figures, ...]


@dataclass(frozen=True)
class EvalClip:
    name: str
    width: int | None
    height: int | None
    frames: int | None
    ms_ssim: str                  # its MS-SSIM variant, e.g. "MS-SSIM (3 scales)"
    lpips: str                    # "LPIPS (alex)" or "unavailable: why"


@dataclass(frozen=True)
class EvalResults:
    """The latest `dcvc-bench eval` of the run (``missing``: none yet; ``problem``: the
    file is there but cannot be read)."""

    path: Path
    missing: bool = True
    problem: str = ""
    created: str = ""
    mode: str = ""                # estimate | real | baselines | iframe-estimate | iframe-real
    frames: int | None = None     # the frames asked for per clip (a shorter clip gives fewer)
    intra_period: int | None = None
    device: str = ""
    clips: tuple[EvalClip, ...] = ()
    lpips_reason: str = ""        # '' when LPIPS was computed
    results: tuple[EvalResult, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ms_ssim_reduced(self) -> list[EvalClip]:
        """Clips too small for 5-scale MS-SSIM (their figures use fewer scales)."""
        return [c for c in self.clips if c.ms_ssim != "MS-SSIM"]


@dataclass(frozen=True)
class RDPoint:
    label: str
    bpp: float | None
    psnr: float | None
    ms_ssim: float | None
    lpips: float | None
    lam: float | None             # the learned codec's λ
    qp: float | None              # the baseline's QP (or CRF)


@dataclass(frozen=True)
class RDCurve:
    name: str
    kind: str
    bits: str
    points: tuple[RDPoint, ...]


@dataclass(frozen=True)
class BDRow:
    codec: str
    anchor: str
    bd_rate_psnr: float | None    # % (negative: fewer bits than the anchor)
    bd_psnr: float | None         # dB
    bd_rate_ms_ssim: float | None  # %
    overlap_psnr: float | None
    method: str
    note: str


@dataclass(frozen=True)
class RDView:
    """The RD curves and BD figures of a `dcvc-bench eval` (``eval/rd.json``)."""

    path: Path
    missing: bool = True
    problem: str = ""
    created: str = ""
    mode: str = ""
    frames: int | None = None
    intra_period: int | None = None
    clips: tuple[str, ...] = ()
    anchor: str | None = None
    bd_method: str = ""
    ms_ssim_label: str = "MS-SSIM"
    colour_path: str = ""
    curves: tuple[RDCurve, ...] = ()
    bd: tuple[BDRow, ...] = ()
    plot: str = ""                # the PNG beside it


def as_float(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    return float(value) if ok else None


def as_int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _figures(name: str, s: dict[str, Any]) -> Figures:
    i, p = _dict(s.get("i_frame")), _dict(s.get("p_frame"))
    firsts = tuple((as_float(_dict(f).get("psnr")), as_float(_dict(f).get("bpp"))) for f in _list(s.get("p_first3"))[:3])
    return Figures(name, as_int(s.get("frames")), as_float(s.get("bpp")), as_float(s.get("psnr")), as_float(s.get("ms_ssim")),
                   as_float(s.get("lpips")), (as_int(i.get("count")), as_float(i.get("psnr")), as_float(i.get("bpp"))),
                   (as_int(p.get("count")), as_float(p.get("psnr")), as_float(p.get("bpp"))), firsts,
                   as_float(s.get("bpp_estimate")), as_float(s.get("rate_gap_percent")),
                   as_float(s.get("enc_ms_per_frame")), as_float(s.get("dec_ms_per_frame")))


def read_eval_results(path: Path, doc: dict[str, Any] | None, *, missing: bool = True,
                      problem: str = "") -> EvalResults:
    """``eval/latest.json`` as view data; ``doc`` None: the file is missing or unreadable."""
    if doc is None:
        return EvalResults(path, missing=missing, problem=problem)
    settings, lpips = _dict(doc.get("settings")), _dict(doc.get("lpips"))
    clips = tuple(EvalClip(_str(c.get("name"), "?"), as_int(c.get("width")), as_int(c.get("height")),
                           as_int(c.get("frames")), _str(c.get("ms_ssim"), "MS-SSIM"), _str(c.get("lpips")))
                  for c in map(_dict, _list(doc.get("clips"))))
    results = []
    for r in map(_dict, _list(doc.get("results"))):
        per_clip = tuple(_figures(str(name), _dict(summary)) for name, summary in _dict(r.get("clips")).items())
        results.append(EvalResult(_str(r.get("id"), "?"), _str(r.get("curve")), _str(r.get("kind"), "?"),
                                  _str(r.get("bits"), "?"), _figures("overall", _dict(r.get("overall"))), per_clip))
    reason = "" if lpips.get("available") is True else _str(lpips.get("reason"), "unavailable")
    return EvalResults(path, False, "", _str(doc.get("created")), _str(doc.get("mode")),
                       as_int(settings.get("frames")), as_int(settings.get("intra_period")), _str(settings.get("device")),
                       clips, reason, tuple(results), tuple(n for n in _list(doc.get("notes")) if isinstance(n, str)))


def read_rd_view(path: Path, doc: dict[str, Any] | None, *, missing: bool = True,
                 problem: str = "") -> RDView:
    """``eval/rd.json`` as view data; ``doc`` None: the file is missing or unreadable."""
    if doc is None:
        return RDView(path, missing=missing, problem=problem)
    curves = tuple(
        RDCurve(_str(c.get("name"), "?"), _str(c.get("kind")), _str(c.get("bits")),
                tuple(RDPoint(_str(p.get("label")), as_float(p.get("bpp")), as_float(p.get("psnr")), as_float(p.get("ms_ssim")),
                              as_float(p.get("lpips")), as_float(p.get("lambda")), as_float(p.get("qp")))
                      for p in map(_dict, _list(c.get("points")))))
        for c in map(_dict, _list(doc.get("curves"))))
    bd = tuple(BDRow(_str(b.get("codec"), "?"), _str(b.get("anchor")), as_float(b.get("bd_rate_psnr")),
                     as_float(b.get("bd_psnr")), as_float(b.get("bd_rate_ms_ssim")), as_float(b.get("overlap_psnr")),
                     _str(b.get("method")), _str(b.get("note")))
               for b in map(_dict, _list(doc.get("bd"))))
    anchor = doc.get("anchor")
    return RDView(path, False, "", _str(doc.get("created")), _str(doc.get("mode")), as_int(doc.get("frames")),
                  as_int(doc.get("intra_period")), tuple(c for c in _list(doc.get("clips")) if isinstance(c, str)),
                  anchor if isinstance(anchor, str) else None, _str(doc.get("bd_method")),
                  _str(doc.get("ms_ssim_label"), "MS-SSIM"), _str(doc.get("colour_path")), curves, bd,
                  _str(doc.get("plot")))
