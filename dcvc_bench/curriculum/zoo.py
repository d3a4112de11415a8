"""The CompressAI zoo models an I-frame can be, with their quality ranges. Pure Python.

A static copy, not a lookup: reading ``compressai.zoo`` imports torch and torchvision
(seconds), and `plan` must start in well under a second without them. The copy cannot go
stale unnoticed: ``tests/curriculum/test_curriculum_zoo.py`` compares it with what the
trainer accepts (:func:`dcvc_bench.models.iframe.compressai_model_names`, built from the
installed ``compressai.zoo.image_models`` and its per-model quality tables). Like the
trainer, it leaves out the ``-vbr`` models (they take a rate parameter, not a fixed
quality) and ``bmshj2018-factorized-relu`` (compressai 1.2.x builds it as the GDN model).
"""

from __future__ import annotations

import difflib

COMPRESSAI_QUALITIES: dict[str, range] = {
    "bmshj2018-factorized": range(1, 9),
    "bmshj2018-hyperprior": range(1, 9),
    "mbt2018-mean": range(1, 9),
    "mbt2018": range(1, 9),
    "cheng2020-anchor": range(1, 7),
    "cheng2020-attn": range(1, 7),
}
"""Zoo name -> the qualities it has (compressai 1.2.x)."""


def check_zoo_model(name: str) -> None:
    """``ValueError`` naming the closest zoo name when ``name`` is not one."""
    if name in COMPRESSAI_QUALITIES:
        return
    close = difflib.get_close_matches(name, list(COMPRESSAI_QUALITIES), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"is not a CompressAI zoo model; {hint}valid: {', '.join(COMPRESSAI_QUALITIES)}")


def check_zoo_quality(name: str, quality: int) -> None:
    """``ValueError`` when the zoo model ``name`` has no ``quality``."""
    qualities = COMPRESSAI_QUALITIES[name]
    if quality not in qualities:
        raise ValueError(f"must be {qualities[0]}..{qualities[-1]} for {name}, got {quality}")
