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
#: The evaluation history (``eval/index.json``, rewritten atomically after every eval's own files).
EVAL_INDEX, INDEX_KIND = "eval/index.json", "dcvc-bench-eval-index"


def is_eval_document_name(name: str) -> bool:
    """Whether a file of ``eval/`` is one evaluation's document (``<stamp>-<mode>.json``),
    not ``latest.json``, ``rd.json``, ``index.json`` or an RD companion (``*-rd.json``)."""
    return (name.endswith(".json") and not name.endswith("-rd.json")
            and name not in (EVAL_LATEST[5:], EVAL_RD[5:], EVAL_INDEX[5:]))
VERSION = 1
MODES = ("estimate", "real", "baselines", "iframe-estimate", "iframe-real")

#: What every number means (written into each document).
CONVENTIONS = {
    "psnr": "RGB PSNR in dB on [0,1]: per frame, then the mean over frames (DCVC convention); "
            "overall = mean over clips",
    "bpp": "bits / (frames x original pixels); padding never counted; real streams include their header",
    "ms_ssim": "pytorch-msssim MS-SSIM, data range 1; reduced scales for small frames (labelled per clip)",
    "ssim": "pytorch-msssim single-scale SSIM, data range 1, 11-px Gaussian window (sigma 1.5; a smaller odd "
            "window on frames under 11 px, labelled per clip), per frame, then means as PSNR",
    "lpips": "LPIPS v0.1 AlexNet, only from local weights",
    "fid": "FID per RD point: torch-fidelity InceptionV3 (2015-12-05 TF weights, local file only) features of "
           "whole frames resized to 299x299, all original vs all decoded (scored) frames of the point, pooled over "
           "clips; d-dim features need at least d + 1 frames, else null with the reason (the `fid` section: "
           "dims, frames needed, weights); never a number from too few frames or a random network",
    "rates_bpp": "other rates of an I-frame codec, bits / (frames x original pixels), carried when every frame "
                 "has them: VQ codecs' uniform (n_indices x L x log2 K), entropy (under the stored per-layer "
                 "model) and real_equivalent (the estimate: information content under the coder's CDF); "
                 "i_frame.rates_bpp: the same over the I-frames alone (bits / (I-frames x original pixels))",
    "payload_bpp": "i_frame.payload_bpp, real coding only: the I-frames' coded data alone, bits / (I-frames x "
                   "original pixels), without the stream's frame framing (length prefix and CRC) and the I-frame "
                   "codec's own (a VQ payload's version, flags and CRC-32: 6 bytes); bpp - payload_bpp is that "
                   "framing. For a VQ codec payload_bpp <= rates_bpp.uniform + padding to a whole byte (rANS is "
                   "used only when it is smaller than the indices packed at log2 K bits)",
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


class IFramePart(FramePart):
    """The I-frames of a clip (or overall): also their estimate beside real bits, their
    payload and the I-frame codec's other rates, each as BPP over the I-frames' pixels."""

    bpp_estimate: Optional[float]     # the estimate beside real bits (learned --real only)
    payload_bpp: Optional[float]      # real coding: bits without the frames' framing (CONVENTIONS)
    rates_bpp: Optional[dict[str, Optional[float]]]   # the I-frame codec's other rates (CONVENTIONS), or None


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
    ssim: Optional[float]
    ms_ssim: Optional[float]
    lpips: Optional[float]
    rates_bpp: Optional[dict[str, Optional[float]]]   # an I-frame codec's other rates (CONVENTIONS), or None
    i_frame: IFramePart
    p_frame: FramePart
    p_first3: list[FirstP]
    bpp_estimate: Optional[float]     # the estimate beside real bits (learned --real only)
    rate_gap_percent: Optional[float]
    enc_ms_per_frame: Optional[float]
    dec_ms_per_frame: Optional[float]
    bits: NotRequired[float]          # clips: all bits, header included
    header_bits: NotRequired[float]
    clips: NotRequired[int]           # overall: how many clips
    fid: NotRequired[Optional[float]]         # overall: the point's FID over all its frames (None: fid_reason)
    fid_reason: NotRequired[Optional[str]]    # overall: why there is no FID ("FID unavailable: ...")
    per_frame: NotRequired[list[dict[str, Any]]]   # clips: index, kind, bits, bpp, psnr, ssim, ms_ssim, lpips?,
    #                                                rate_bits? (the other rates' bits; in `eval`, I-frames),
    #                                                est_bits? and payload_bits? (real coding), ...
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
    ssim: str                         # its SSIM variant, "SSIM" or "SSIM (win 5)"
    lpips: str                        # "LPIPS (alex)" or "unavailable: why"
    colour_roundtrip_psnr: NotRequired[Optional[float]]   # with baselines: the colour path alone
    dataset: NotRequired[str]         # --dataset-config: the sequence's class (UVG, HEVC_B, ...)
    intra_period: NotRequired[int]    # the clip's own intra period (dataset config / preset)
    bit_depth: NotRequired[int]       # --color yuv420: the source planes' bit depth


RDPointDoc = TypedDict("RDPointDoc", {
    "label": str, "bpp": float, "psnr": Optional[float], "ssim": Optional[float], "ms_ssim": Optional[float],
    "lpips": Optional[float], "fid": Optional[float],
    "bpp_estimate": Optional[float],  # the estimate beside real bits
    "rates_bpp": Optional[dict[str, Optional[float]]],
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
    layers: NotRequired[Optional[list[int]]]       # `eval-iframe --layers`: the depths evaluated


class LPIPSInfo(TypedDict):
    available: bool
    reason: Optional[str]
    net: str


class FIDInfo(TypedDict):
    available: bool                   # the network was loaded (enough frames planned, weights here)
    reason: Optional[str]             # why not: "FID unavailable: place FILE in DIR", "... needs at least N"
    dims: int                         # Inception feature size
    min_frames: int                   # dims + 1
    weights: Optional[str]            # the weights file used
    convention: str


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
    fid: Optional[FIDInfo]            # None in documents written before FID
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


class EvalIndexEntry(TypedDict):
    file: str                         # the full document, e.g. 20261201-163000-real.json (in eval/)
    rd_file: Optional[str]            # its RD document (…-rd.json), or None without RD curves
    created: str
    mode: str                         # the document's mode (one of MODES)
    checkpoints: list[str]            # evaluated checkpoints, relative to the run folder when inside it
    clips: list[str]                  # the clips' paths, relative to the run folder when inside it
    codecs: list[str]                 # the RD curves' names (else the results' curves), in order


class EvalIndex(TypedDict):
    format: str                       # INDEX_KIND
    version: int
    evals: list[EvalIndexEntry]       # oldest first


# --------------------------------------------------------------------------- writing


def settings_doc(*, frames: int, intra_period: int, real: bool, ema: bool, device: str, videos: Optional[str],
                 rvq_layers: Optional[list[int]] = None, layers: Optional[list[int]] = None) -> Settings:
    out: Settings = {"frames": frames, "intra_period": intra_period, "real": real, "ema": ema, "device": device,
                     "videos": videos, "rvq_layers": rvq_layers}
    if layers is not None:
        out["layers"] = layers
    return out


def lpips_doc(available: bool, reason: Optional[str]) -> LPIPSInfo:
    return {"available": available, "reason": reason, "net": "alex"}


def fid_doc(*, available: bool, reason: Optional[str], dims: int, min_frames: int, weights: Optional[str],
            convention: str) -> FIDInfo:
    return {"available": available, "reason": reason, "dims": dims, "min_frames": min_frames, "weights": weights,
            "convention": convention}


def result_doc(id: str, curve: str, kind: str, bits: str, source: dict[str, Any], overall: Summary,
               clips: dict[str, Summary], fid: tuple[Optional[float], Optional[str]] = (None, "FID not computed"),
               ) -> ResultDoc:
    """One RD point; ``fid``: (its FID, None) or (None, why not), written on ``overall``."""
    if kind not in ("learned", "baseline", "iframe") or bits not in ("estimated", "real"):
        raise ValueError(f"result {id!r}: kind {kind!r} / bits {bits!r} is not in the eval document schema")
    overall = {**overall, "fid": fid[0], "fid_reason": fid[1]}
    return {"id": id, "curve": curve, "kind": kind, "bits": bits, "source": source,  # type: ignore[typeddict-item]
            "overall": overall, "clips": clips}


def rd_point(result: ResultDoc) -> RDPointDoc:
    """A result as a point of its RD curve: its overall figures, λ or QP, RVQ depth."""
    o = result["overall"]
    return {"label": result["id"], "bpp": o["bpp"], "psnr": o["psnr"], "ssim": o.get("ssim"), "ms_ssim": o["ms_ssim"],
            "lpips": o["lpips"], "fid": o.get("fid"), "bpp_estimate": o.get("bpp_estimate"),
            "rates_bpp": o.get("rates_bpp"), "lambda": result["source"].get("lambda"),
            "qp": result["source"].get("value"),
            "layers": result["source"].get("rvq_layers")}


def eval_document(*, mode: str, run: Optional[str], settings: Settings, lpips: LPIPSInfo, fid: Optional[FIDInfo],
                  baselines: Optional[dict[str, Any]], clips: list[ClipInfo], results: list[ResultDoc],
                  rd: Optional[RDSection], notes: list[str]) -> EvalDocument:
    """The whole result document, stamped now."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    return {"format": EVAL_KIND, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "created_unix": time.time(), "mode": mode, "run": run, "settings": settings,
            "conventions": CONVENTIONS, "lpips": lpips, "fid": fid, "baselines": baselines, "clips": clips,
            "results": results, "rd": rd, "notes": notes}


def _relative(path: str, run: Optional[str]) -> str:
    """``path`` relative to the run folder when inside it (plain string logic: torch-free, no I/O)."""
    from pathlib import Path

    if run:
        try:
            return Path(path).relative_to(Path(run)).as_posix()
        except ValueError:
            pass
    return path


def index_entry(doc: EvalDocument, file: str, rd_file: Optional[str]) -> EvalIndexEntry:
    """The index line of the document written as ``eval/<file>``."""
    run = doc.get("run")
    checkpoints: list[str] = []
    for result in doc["results"]:
        checkpoint = (result.get("source") or {}).get("checkpoint")
        if checkpoint and _relative(str(checkpoint), run) not in checkpoints:
            checkpoints.append(_relative(str(checkpoint), run))
    curves = [c["name"] for c in (doc.get("rd") or {}).get("curves", [])] or \
        list(dict.fromkeys(r["curve"] for r in doc["results"]))
    return {"file": file, "rd_file": rd_file, "created": doc["created"], "mode": doc["mode"],
            "checkpoints": checkpoints, "clips": [_relative(c["path"], run) for c in doc["clips"]],
            "codecs": curves}


def eval_index(entries: list[EvalIndexEntry]) -> EvalIndex:
    return {"format": INDEX_KIND, "version": VERSION, "evals": entries}


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
