"""The written form of the eval documents: their fields as TypedDicts, the constants they
carry, and the builders the writer uses (:mod:`dcvc_bench.eval.run_eval`,
:mod:`~dcvc_bench.eval.iframe_eval`, :mod:`~dcvc_bench.eval.rd`,
:mod:`~dcvc_bench.eval.scoring`'s summaries). Torch-free.
"""

from __future__ import annotations

import time
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
    "layers": Optional[int],          # `eval --rvq-layers`: the I-frame codec's RVQ depth
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
    rvq_layers: NotRequired[Optional[list[int]]]   # `eval --rvq-layers`: the RVQ depths evaluated


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


def settings_doc(*, frames: int, intra_period: int, real: bool, ema: bool, device: str, videos: Optional[str],
                 rvq_layers: Optional[list[int]] = None) -> Settings:
    return {"frames": frames, "intra_period": intra_period, "real": real, "ema": ema, "device": device,
            "videos": videos, "rvq_layers": rvq_layers}


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
            "lambda": result["source"].get("lambda"), "qp": result["source"].get("value"),
            "layers": result["source"].get("rvq_layers")}


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
