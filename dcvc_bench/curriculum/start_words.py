"""The words for how a step starts: one table, used by `plan`, `status`, the run log
(:mod:`dcvc_bench.runner.display` via :meth:`~dcvc_bench.runner.resume.Decision.how`),
the TUI and the README, so that one start mode has one name everywhere.

Each :class:`~dcvc_bench.curriculum.steps.StartKind` has
- ``words``: the phrase itself ("previous step's final + LR reset to 1e-4");
- ``short``: at most 5 cells, for the TUI's tree (its legend is :func:`legend`);
- ``detail``: what is loaded and what is kept, in brackets after the phrase.
The machine-readable ids (``StartKind`` values, ``plan --json``'s ``start``, the ledger's
``start_kind``) are not words and do not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcvc_bench.curriculum.steps import StartKind


@dataclass(frozen=True)
class StartWords:
    words: str    # may hold ``{lr}``: the reset learning rate
    short: str
    detail: str


WORDS: dict[StartKind, StartWords] = {
    StartKind.FRESH: StartWords("fresh", "fresh", "random init"),
    StartKind.PREVIOUS_STAGE_BEST: StartWords("previous stage's best, weights only", "best",
                                              "fresh optimizer"),
    StartKind.STAGE_LATEST_LR_RESET: StartWords("previous step's final + LR reset to {lr}", "final",
                                                "weights + optimizer"),
    StartKind.RESUME_OWN_LATEST: StartWords("own latest: continue", "cont.",
                                            "same epoch counter, optimizer, LR"),
    StartKind.PREVIOUS_STEP_FINAL: StartWords("previous step's final, weights only", "final",
                                              "fresh optimizers"),
}


def lr_text(lr: float | None) -> str:
    """``1e-4``, ``2.5e-5``, ``0.01``: a learning rate as people write it."""
    if lr is None:
        return "?"
    if lr == 0 or 1e-3 <= abs(lr) < 1:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def start_words(kind: StartKind, lr: float | None = None) -> str:
    """The phrase of a start kind (``lr``: the reset value a GOP step forces)."""
    return WORDS[kind].words.format(lr=lr_text(lr))


def start_phrase(kind: StartKind, lr: float | None = None, source: str | None = None) -> str:
    """The phrase with its detail and, where known, the file it loads:
    ``previous step's final + LR reset to 1e-4 (weights + optimizer; l2048-s1g2/final.pth)``."""
    entry = WORDS[kind]
    inside = "; ".join(part for part in (entry.detail, source) if part)
    return f"{start_words(kind, lr)} ({inside})"


def start_short(kind: str) -> str:
    """The tree's short word for a ``StartKind`` value (``""`` for ``-`` or unknown)."""
    known = {k.value: k for k in StartKind}
    return WORDS[known[kind]].short if kind in known else ""


def legend() -> list[tuple[str, str]]:
    """(short word, what it means) for every distinct short word, in table order."""
    out: dict[str, list[str]] = {}
    for entry in WORDS.values():
        out.setdefault(entry.short, []).append(entry.words.format(lr="the reset LR"))
    return [(short, " / ".join(dict.fromkeys(texts))) for short, texts in out.items()]
