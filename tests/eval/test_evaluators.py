"""What video evaluation says about the estimate it prints (eval/evaluators.py)."""

from __future__ import annotations

from dcvc_bench.curriculum.iframe_spec import parse_iframe_spec
from dcvc_bench.eval.evaluators import iframe_estimate_notes
from dcvc_bench.models.iframe import build_iframe_codec
from dcvc_bench.models.iframe.vq import RVQCodec
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR


def test_an_iframe_codec_whose_estimate_is_not_its_coded_size_is_named_once():
    opencv = build_iframe_codec(parse_iframe_spec({"type": "opencv"}))
    assert opencv.exact_estimate and iframe_estimate_notes("l256", opencv) == []
    rvq = RVQCodec.untrained(CONFIG_DIR / "tiny_rvq_f16.json")
    (note,) = iframe_estimate_notes("l256", rvq)
    assert note.startswith(f"l256: the I-frames' estimated bits are {rvq.name}'s") and "--real" in note
