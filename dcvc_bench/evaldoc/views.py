"""The read form of the eval documents: view data for the TUI, parsed tolerantly (a
missing or mistyped field becomes None or "", shown as "-", never an exception).
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcvc_bench.evaldoc.schema import is_eval_document_name


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
    ssim: float | None = None
    fid: float | None = None      # overall only: the RD point's FID (None: ``fid_reason``)
    fid_reason: str = ""


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
    ssim: str = "SSIM"            # its SSIM variant, e.g. "SSIM (win 5)"


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
    fid_reason: str = ""          # '' when FID was computed (or the document predates FID)
    color: str = "rgb"            # rgb | yuv420 (PSNR/MS-SSIM per plane, 6:1:1)

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
    layers: int | None = None     # the I-frame codec's RVQ depth (`eval --rvq-layers`)
    ssim: float | None = None
    fid: float | None = None


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
                   as_float(s.get("enc_ms_per_frame")), as_float(s.get("dec_ms_per_frame")), as_float(s.get("ssim")),
                   as_float(s.get("fid")), _str(s.get("fid_reason")))


def read_eval_results(path: Path, doc: dict[str, Any] | None, *, missing: bool = True,
                      problem: str = "") -> EvalResults:
    """``eval/latest.json`` as view data; ``doc`` None: the file is missing or unreadable."""
    if doc is None:
        return EvalResults(path, missing=missing, problem=problem)
    settings, lpips = _dict(doc.get("settings")), _dict(doc.get("lpips"))
    clips = tuple(EvalClip(_str(c.get("name"), "?"), as_int(c.get("width")), as_int(c.get("height")),
                           as_int(c.get("frames")), _str(c.get("ms_ssim"), "MS-SSIM"), _str(c.get("lpips")),
                           _str(c.get("ssim"), "SSIM"))
                  for c in map(_dict, _list(doc.get("clips"))))
    results = []
    for r in map(_dict, _list(doc.get("results"))):
        per_clip = tuple(_figures(str(name), _dict(summary)) for name, summary in _dict(r.get("clips")).items())
        results.append(EvalResult(_str(r.get("id"), "?"), _str(r.get("curve")), _str(r.get("kind"), "?"),
                                  _str(r.get("bits"), "?"), _figures("overall", _dict(r.get("overall"))), per_clip))
    reason = "" if lpips.get("available") is True else _str(lpips.get("reason"), "unavailable")
    fid = _dict(doc.get("fid"))
    return EvalResults(path, False, "", _str(doc.get("created")), _str(doc.get("mode")),
                       as_int(settings.get("frames")), as_int(settings.get("intra_period")), _str(settings.get("device")),
                       clips, reason, tuple(results), tuple(n for n in _list(doc.get("notes")) if isinstance(n, str)),
                       "" if not fid or fid.get("available") is True else _str(fid.get("reason"), "FID unavailable"),
                       _str(settings.get("color"), "rgb"))


def read_rd_view(path: Path, doc: dict[str, Any] | None, *, missing: bool = True,
                 problem: str = "") -> RDView:
    """``eval/rd.json`` as view data; ``doc`` None: the file is missing or unreadable."""
    if doc is None:
        return RDView(path, missing=missing, problem=problem)
    curves = tuple(
        RDCurve(_str(c.get("name"), "?"), _str(c.get("kind")), _str(c.get("bits")),
                tuple(RDPoint(_str(p.get("label")), as_float(p.get("bpp")), as_float(p.get("psnr")), as_float(p.get("ms_ssim")),
                              as_float(p.get("lpips")), as_float(p.get("lambda")), as_float(p.get("qp")),
                              as_int(p.get("layers")), as_float(p.get("ssim")), as_float(p.get("fid")))
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


# --------------------------------------------------------------------------- the history

#: ``eval/index.json``: every `dcvc-bench eval` of the run folder, oldest first (written by
#: :mod:`dcvc_bench.eval.run_eval` after each eval's own files).


@dataclass(frozen=True)
class EvalEntry:
    """One `dcvc-bench eval` in the run's history (``eval/<file>``, its RD curves in
    ``eval/<rd_file>``)."""

    file: str
    rd_file: str | None
    created: str                  # as the document says (``2026-12-01T16:30:00+0000``), or from the file name
    mode: str
    checkpoints: tuple[str, ...] = ()
    clips: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()

    @property
    def when(self) -> str:
        """``2026-12-01 16:30``: the date and minute, for lists."""
        return self.created[:16].replace("T", " ") if len(self.created) >= 16 else self.created or "?"


def read_eval_history(eval_dir: Path, index: dict[str, Any] | None) -> tuple[EvalEntry, ...]:
    """The evaluations of a run folder, newest first: from ``index`` (the parsed
    ``eval/index.json``), or when there is none (a run evaluated before the index), from
    the documents' names in ``eval_dir`` (``<stamp>-<mode>.json``, not ``*-rd.json``)
    sorted by name; those entries carry no checkpoints or codecs until opened."""
    if index is not None:
        entries = [EvalEntry(e["file"], e.get("rd_file") if isinstance(e.get("rd_file"), str) else None,
                             _str(e.get("created")), _str(e.get("mode"), "?"), _strs(e.get("checkpoints")),
                             _strs(e.get("clips")), _strs(e.get("codecs")))
                   for e in map(_dict, _list(index.get("evals"))) if isinstance(e.get("file"), str)]
        return tuple(reversed(entries))
    try:
        names = sorted(p.name for p in eval_dir.glob("*.json"))
    except OSError:
        return ()
    entries = []
    for name in names:
        if not is_eval_document_name(name):
            continue
        stem = name[:-len(".json")]
        parts = stem.split("-", 2)
        stamp_ok = len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit() and len(parts[0]) == 8
        created = (f"{parts[0][:4]}-{parts[0][4:6]}-{parts[0][6:]}T{parts[1][:2]}:{parts[1][2:4]}:{parts[1][4:6]}"
                   if stamp_ok else "")
        rd = f"{stem}-rd.json"
        entries.append(EvalEntry(name, rd if rd in names else None, created, parts[2] if stamp_ok else "?"))
    return tuple(reversed(entries))


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in _list(value) if isinstance(v, str))


def overlay(rd: RDView, other: RDView, tag: str) -> RDView:
    """``rd`` with ``other``'s curves added, each named ``<name> @ <tag>`` (another
    evaluation drawn over this one; the BD figures stay this one's)."""
    extra = tuple(RDCurve(f"{c.name} @ {tag}", c.kind, c.bits, c.points) for c in other.curves)
    return RDView(rd.path, rd.missing, rd.problem, rd.created, rd.mode, rd.frames, rd.intra_period, rd.clips,
                  rd.anchor, rd.bd_method, rd.ms_ssim_label, rd.colour_path, rd.curves + extra, rd.bd, rd.plot)
