"""The eval document schema (dcvc_bench.evaldoc), torch-free: what the writer's builders
produce, the TUI's readers read back, field for field, through JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcvc_bench.evaldoc import (CONVENTIONS, EVAL_KIND, RD_KIND, VERSION, eval_document, fid_doc, lpips_doc,
                                rd_document, rd_point, read_eval_results, read_rd_view, result_doc, settings_doc)


def summary(bpp: float, psnr: float, **extra) -> dict:
    return {"frames": 3, "bpp": bpp, "psnr": psnr, "ssim": 0.9, "ms_ssim": 0.95, "lpips": None,
            "rates_bpp": {"uniform": bpp * 2, "entropy": None},
            "i_frame": {"count": 1, "bpp": bpp * 4, "psnr": psnr + 1},
            "p_frame": {"count": 2, "bpp": bpp / 2, "psnr": psnr - 0.5},
            "p_first3": [{"index": 1, "bpp": bpp / 2, "psnr": psnr - 0.4}],
            "bpp_estimate": bpp * 0.99, "rate_gap_percent": 1.0, "enc_ms_per_frame": 12.0, "dec_ms_per_frame": 8.0,
            **extra}


def document() -> dict:
    results = [result_doc(f"l{lam}", "demo", "learned", "real", {"lambda": float(lam)},
                          summary(bpp, psnr, clips=1), {"clip": summary(bpp, psnr)}, fid=fid)
               for lam, bpp, psnr, fid in ((256, 0.1, 30.0, (12.5, None)),
                                           (2048, 0.3, 34.0, (None, "FID unavailable: 3 frames evaluated")))]
    rd = {"anchor": None, "bd_method": "akima", "bd": [], "ms_ssim_label": "MS-SSIM (3 scales)",
          "curves": [{"name": "demo", "kind": "learned", "bits": "real", "points": [rd_point(r) for r in results]}]}
    clip = {"name": "clip", "path": "/x/clip.mp4", "width": 96, "height": 64, "frames": 3,
            "ms_ssim": "MS-SSIM (3 scales)", "ssim": "SSIM", "lpips": "unavailable: no weights"}
    return eval_document(mode="real", run=None, settings=settings_doc(frames=3, intra_period=32, real=True, ema=False,
                                                                     device="cpu", videos=None),
                         lpips=lpips_doc(False, "unavailable: no weights"),
                         fid=fid_doc(available=False, reason="FID unavailable: place F in D", dims=64, min_frames=65,
                                     weights=None, convention="FID: ..."), baselines=None, clips=[clip],
                         results=results, rd=rd, notes=["a note"])


def test_what_the_writer_builds_the_tui_reads_back():
    doc = json.loads(json.dumps(document()))
    assert doc["format"] == EVAL_KIND and doc["version"] == VERSION and doc["conventions"]["missing"]
    assert {"ssim", "fid", "rates_bpp"} <= set(CONVENTIONS) <= set(doc["conventions"])
    view = read_eval_results(Path("latest.json"), doc, missing=False)
    assert not view.missing and view.mode == "real" and view.frames == 3 and view.intra_period == 32
    assert view.lpips_reason == "unavailable: no weights" and view.notes == ("a note",)
    assert view.fid_reason == "FID unavailable: place F in D" and view.clips[0].ssim == "SSIM"
    assert [c.ms_ssim for c in view.ms_ssim_reduced] == ["MS-SSIM (3 scales)"]
    first = view.results[0]
    assert (first.id, first.curve, first.kind, first.bits) == ("l256", "demo", "learned", "real")
    o = first.overall
    assert (o.frames, o.bpp, o.psnr, o.ms_ssim, o.lpips) == (3, 0.1, 30.0, 0.95, None)
    assert o.i_frames == (1, 31.0, 0.4) and o.p_frames == (2, 29.5, 0.05) and o.p_first3 == ((29.6, 0.05),)
    assert (o.bpp_estimate, o.rate_gap_percent, o.enc_ms, o.dec_ms) == (pytest.approx(0.099), 1.0, 12.0, 8.0)
    assert (o.ssim, o.fid, o.fid_reason) == (0.9, 12.5, "")
    second = view.results[1].overall
    assert (second.fid, second.fid_reason) == (None, "FID unavailable: 3 frames evaluated")
    assert [f.name for f in first.clips] == ["clip"]

    rd = json.loads(json.dumps(rd_document(document(), source="x.json")))
    assert rd["format"] == RD_KIND and rd["source"] == "x.json" and rd["clips"] == ["clip"]
    rd_view = read_rd_view(Path("rd.json"), rd, missing=False)
    assert rd_view.ms_ssim_label == "MS-SSIM (3 scales)" and rd_view.bd_method == "akima"
    (curve,) = rd_view.curves
    assert [(p.label, p.bpp, p.psnr, p.ssim, p.fid, p.lam, p.qp) for p in curve.points] == [
        ("l256", 0.1, 30.0, 0.9, 12.5, 256.0, None), ("l2048", 0.3, 34.0, 0.9, None, 2048.0, None)]
    # the written point carries the overall figures beyond the view's
    assert rd["curves"][0]["points"][0]["rates_bpp"] == {"uniform": 0.2, "entropy": None}
    assert rd["curves"][0]["points"][0]["bpp_estimate"] == pytest.approx(0.099)


def test_the_builders_refuse_what_the_schema_has_no_room_for():
    with pytest.raises(ValueError, match="mode"):
        eval_document(mode="guess", run=None, settings=document()["settings"], lpips=lpips_doc(True, None),
                      fid=None, baselines=None, clips=[], results=[], rd=None, notes=[])
    with pytest.raises(ValueError, match="kind"):
        result_doc("x", "c", "learnt", "real", {}, summary(0.1, 30.0), {})


def test_readers_never_raise_on_a_mangled_document():
    view = read_eval_results(Path("latest.json"), {"results": [{"overall": "junk", "clips": [1]}], "clips": "x"},
                             missing=False)
    assert view.results[0].overall.bpp is None and view.clips == ()
    assert read_rd_view(Path("rd.json"), {"curves": [{"points": [None]}]}, missing=False).curves[0].points[0].bpp is None
