"""The one summariser of evaluation results (dcvc_bench.eval.scoring): a figure missing
for any clip is missing overall, never a mean over the clips that have it; and training's
evaluation (eval.estimate) summarises with it."""

from __future__ import annotations

import pytest

from dcvc_bench.eval.scoring import mean, summarize_clip, summarize_overall

PIXELS = 96 * 64


def frame(index: int, kind: str, bits: float, psnr: float, **extra) -> dict:
    return {"index": index, "kind": kind, "bits": bits, "bpp": bits / PIXELS, "psnr": psnr, "ms_ssim": 0.9, **extra}


def test_a_figure_missing_for_one_clip_is_missing_overall():
    """A one-frame clip has no P-frame: the overall P-frame figures and P1 are missing,
    not the other clip's values passed off as the mean over both."""
    long = summarize_clip([frame(0, "I", 9000, 30.0), frame(1, "P", 900, 29.0), frame(2, "P", 800, 28.0)], PIXELS)
    short = summarize_clip([frame(0, "I", 8000, 31.0)], PIXELS)
    assert short["p_frame"] == {"count": 0, "bpp": None, "psnr": None} and short["p_first3"] == []
    overall = summarize_overall([long, short])
    assert overall["p_frame"] == {"count": 2, "bpp": None, "psnr": None}
    assert overall["p_first3"] == []
    # figures every clip has are means over clips (DCVC convention), counts are sums
    assert overall["psnr"] == pytest.approx((long["psnr"] + short["psnr"]) / 2)
    assert overall["i_frame"]["psnr"] == pytest.approx(30.5) and overall["i_frame"]["count"] == 2
    assert overall["clips"] == 2 and overall["frames"] == 4
    # and with both clips long enough, P1 is there
    both = summarize_overall([long, long])
    assert both["p_first3"] == [{"index": 1, "bpp": pytest.approx(900 / PIXELS), "psnr": 29.0},
                                {"index": 2, "bpp": pytest.approx(800 / PIXELS), "psnr": 28.0}]
    assert both["p_frame"]["psnr"] == pytest.approx(28.5)


def test_lpips_timing_and_estimate_missing_for_one_clip_are_missing_overall():
    timed = summarize_clip([frame(0, "I", 9000, 30.0, lpips=0.2, enc_ms=5.0, dec_ms=2.0, est_bits=8800)], PIXELS)
    bare = summarize_clip([frame(0, "I", 8000, 31.0)], PIXELS)
    assert timed["lpips"] == 0.2 and timed["bpp_estimate"] == pytest.approx(8800 / PIXELS)
    assert timed["rate_gap_percent"] == pytest.approx((9000 / 8800 - 1) * 100)
    overall = summarize_overall([timed, bare])
    for key in ("lpips", "bpp_estimate", "rate_gap_percent", "enc_ms_per_frame", "dec_ms_per_frame"):
        assert overall[key] is None, key
    assert summarize_overall([timed, timed])["enc_ms_per_frame"] == pytest.approx(5.0)


def test_ssim_and_other_rates_follow_the_same_rule():
    """SSIM is a mean of frames then of clips; an I-frame codec's other rates (per-frame
    ``rate_bits``) are BPP over frames and original pixels, carried only when every frame
    (and overall, every clip) has them."""
    rated = summarize_clip([frame(0, "I", 9000, 30.0, ssim=0.8, rate_bits={"uniform": 12288.0, "entropy": 9000.0}),
                            frame(1, "I", 8000, 31.0, ssim=0.9, rate_bits={"uniform": 12288.0, "entropy": 8000.0})],
                           PIXELS)
    assert rated["ssim"] == pytest.approx(0.85)
    assert rated["rates_bpp"] == {"uniform": pytest.approx(12288.0 / PIXELS), "entropy": pytest.approx(8500.0 / PIXELS)}
    partly = summarize_clip([frame(0, "I", 9000, 30.0, ssim=0.8, rate_bits={"uniform": 12288.0, "entropy": 9000.0}),
                             frame(1, "I", 8000, 31.0, rate_bits={"uniform": 12288.0})], PIXELS)
    assert partly["ssim"] is None and partly["rates_bpp"] == {"uniform": pytest.approx(12288.0 / PIXELS),
                                                              "entropy": None}
    bare = summarize_clip([frame(0, "I", 9000, 30.0, ssim=0.7)], PIXELS)
    assert bare["rates_bpp"] is None and bare["ssim"] == 0.7
    assert summarize_clip([frame(0, "I", 9000, 30.0, ssim=0.7, rate_bits={"uniform": 1.0}), frame(1, "I", 1, 30.0)],
                          PIXELS)["rates_bpp"] is None
    both = summarize_overall([rated, bare])
    assert both["ssim"] == pytest.approx((0.85 + 0.7) / 2) and both["rates_bpp"] is None
    assert summarize_overall([rated, partly])["ssim"] is None
    assert summarize_overall([rated, partly])["rates_bpp"] == {"uniform": pytest.approx(12288.0 / PIXELS),
                                                               "entropy": None}
    assert summarize_overall([rated, rated])["rates_bpp"] == rated["rates_bpp"]


def test_a_frame_without_a_figure_makes_it_missing_for_its_clip():
    clip = summarize_clip([frame(0, "I", 9000, 30.0, lpips=0.2), frame(1, "P", 900, 29.0)], PIXELS)
    assert clip["lpips"] is None and clip["psnr"] == pytest.approx(29.5)
    assert clip["bpp"] == pytest.approx(9900 / (2 * PIXELS))


def test_mean_and_empty_inputs():
    assert mean([1.0, 2.0]) == 1.5
    assert mean([]) is None and mean([1.0, None]) is None
    with pytest.raises(ValueError):
        summarize_overall([])
    with pytest.raises(ValueError):
        summarize_clip([], PIXELS)


def test_training_evaluation_summarises_with_the_same_rule(synthetic_clips):
    """eval.estimate's overall figures come from summarize_overall: with a one-frame
    clip beside a longer one, its P-frame figures and loss are missing, not the longer
    clip's."""
    import torch

    from dcvc_bench.curriculum.iframe_spec import OpenCVSpec
    from dcvc_bench.eval.estimate import evaluate_clips
    from dcvc_bench.eval.targets import Clip, load_clip
    from dcvc_bench.models.iframe import build_iframe_codec
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(0)
    net, iframe = DCVC("tiny"), build_iframe_codec(OpenCVSpec())
    frames = load_clip(Clip("a", synthetic_clips / "synth_000.mp4"), 3)
    result = evaluate_clips(net, iframe, [("a", frames), ("b", frames[:1])], 4, 256.0, 32, torch.device("cpu"),
                            measure_proxy=False)
    a, b = result["clips"]["a"], result["clips"]["b"]
    assert a["p_frame"]["psnr"] is not None and a["loss"] is not None
    assert b["p_frame"]["psnr"] is None and b["loss"] is None
    assert result["p_frame"]["psnr"] is None and result["loss"] is None and result["p_first3"] == []
    assert result["psnr"] == pytest.approx((a["psnr"] + b["psnr"]) / 2)
    assert result["rd_loss"] == pytest.approx((a["rd_loss"] + b["rd_loss"]) / 2)
    # a clip's figures are the summariser's: BPP over all its bits and pixels
    assert a["bpp"] == pytest.approx(a["bits"] / (3 * 96 * 64))
    # and SSIM comes with it: per frame, per clip, overall
    assert 0 < a["ssim"] < 1 and result["ssim"] == pytest.approx((a["ssim"] + b["ssim"]) / 2)
