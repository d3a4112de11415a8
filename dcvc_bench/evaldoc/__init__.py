"""The documents `dcvc-bench eval` writes, as typed, torch-free data: the one schema for
the writer (:mod:`dcvc_bench.eval.run_eval`, :mod:`~dcvc_bench.eval.iframe_eval`) and
every reader (the TUI), as :mod:`dcvc_bench.events` is for events.

``eval/<timestamp>-<mode>.json`` and ``eval/latest.json`` (format ``dcvc-bench-eval``,
:class:`EvalDocument`): mode, settings, conventions, LPIPS and FID availability
(:class:`FIDInfo`), the baselines' settings, the clips (:class:`ClipInfo`), one result per
RD point (:class:`ResultDoc`: its overall and per-clip :class:`Summary`, the clips' with
``per_frame`` records, the overall with the point's FID) and the RD section
(:class:`RDSection`). ``eval/<timestamp>-<mode>-rd.json`` and
``eval/rd.json`` (format ``dcvc-bench-rd``, :class:`RDDocument`): the RD curves and
BD figures alone, for the TUI's RD view. ``eval/index.json`` (format
``dcvc-bench-eval-index``, :class:`EvalIndex`): every eval of the folder, oldest first,
each with its files, mode, checkpoints, clips and codecs (:func:`index_entry`). All JSON
is standard (NaN/inf become null).

- :mod:`.schema`: the fields (TypedDicts), constants and builders the writer uses:
  :func:`eval_document`, :func:`result_doc`, :func:`rd_point`, :func:`rd_document`.
- :mod:`.views`: what readers get: :func:`read_eval_results` and :func:`read_rd_view`
  turn a missing or mistyped field into None or "" (shown as "-"), never an exception.
"""

from dcvc_bench.evaldoc.schema import (CONVENTIONS, EVAL_INDEX, EVAL_KIND, EVAL_LATEST, EVAL_RD, INDEX_KIND, MODES,
                                       RD_KIND, VERSION, BDRowDoc, ClipInfo, EvalDocument, EvalIndex, EvalIndexEntry,
                                       FIDInfo, FirstP, FramePart, IFramePart,
                                       LPIPSInfo, RDCurveDoc, RDDocument, RDPointDoc, RDSection, ResultDoc, Settings, Summary,
                                       eval_document, eval_index, fid_doc, index_entry, lpips_doc, rd_document,
                                       rd_point, result_doc, settings_doc)
from dcvc_bench.evaldoc.views import (BDRow, EvalClip, EvalResult, EvalResults, Figures, RDCurve, RDPoint, RDView,
                                      as_float, as_int, read_eval_results, read_rd_view)

__all__ = ["BDRow", "BDRowDoc", "CONVENTIONS", "ClipInfo", "EVAL_INDEX", "EVAL_KIND", "EvalIndex", "EvalIndexEntry",
           "INDEX_KIND", "eval_index", "index_entry", "EVAL_LATEST", "EVAL_RD", "EvalClip",
           "EvalDocument", "EvalResult", "EvalResults", "FIDInfo", "Figures", "FirstP", "FramePart", "IFramePart",
           "LPIPSInfo", "MODES", "RDCurve", "RDCurveDoc", "RDDocument", "RDPoint", "RDPointDoc", "RDSection", "RDView", "RD_KIND",
           "ResultDoc", "Settings", "Summary", "VERSION", "as_float", "as_int", "eval_document", "fid_doc",
           "lpips_doc", "rd_document", "rd_point", "read_eval_results", "read_rd_view", "result_doc", "settings_doc"]
