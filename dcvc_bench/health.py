"""Latent health: is a P-frame latent still carrying anything? Read from eval events.

Training's evaluation reports, per coded tensor of the P-frames (``latents`` in an eval
event: ``y``, ``z``, ``mv_y``, ``mv_z``), the fraction of non-zero coded symbols
(``nonzero``), the mean |latent| before quantisation (``mean_abs``) and its share of the
P-frames' bits (``rate_share``). A latent whose symbols are (almost) all zero codes
nothing: the decoder rebuilds it from the hyperprior's means alone. For ``y`` that means
the P-frame codes no residual (the picture is the warped context), for ``mv_y`` no
motion. Stage 4 from random weights collapses this way within a few hundred updates
(README: "Latent health"); the 4-stage protocol exists to prevent it.

Torch-free: the trainer's log, `dcvc-bench status`, the run display and the TUI share
this rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

#: The coded tensors of a P-frame, as eval events name them.
LATENTS = ("y", "z", "mv_y", "mv_z")
#: A latent is collapsed when fewer than this fraction of its coded symbols are non-zero.
COLLAPSE_BELOW = 0.001
#: The latents watched, and what their collapse means.
MEANING = {"y": "the P-frame codes no residual", "mv_y": "the P-frame codes no motion"}
#: The stages whose loss puts a rate on the latent: where the rate can drive it to zero.
#: Elsewhere an all-zero latent is not yet used (stage 2 starts from the untrained, near-zero
#: y of stage 1's random residual branch) or frozen (motion in stages 2-3).
RATED_IN = {"y": (3, 4), "mv_y": (1, 4)}
ADVICE = ("check the stage order (stages 1-3 before 4; stage 4 from random weights collapses), "
          "λ (too low a λ makes zero rate the optimum), and the SpyNet initialisation (--spynet_checkpoint)")


@dataclass(frozen=True)
class Collapse:
    """``latent`` has been collapsed at every evaluation of the step since ``since_epoch``."""

    latent: str
    since_epoch: int | None
    nonzero: float

    def message(self) -> str:
        share = "0 %" if self.nonzero == 0 else f"{100 * self.nonzero:.2f} %"
        since = f" since epoch {self.since_epoch}" if self.since_epoch is not None else ""
        return f"{self.latent}: {share} non-zero symbols{since} — {MEANING[self.latent]}"

    def warning(self) -> str:
        """The message with what to check."""
        return f"{self.message()}; {ADVICE}"


def nonzero_fraction(event: dict[str, Any], latent: str) -> float | None:
    """An eval event's fraction of non-zero ``latent`` symbols, or None if not reported."""
    latents = event.get("latents")
    stats = latents.get(latent) if isinstance(latents, dict) else None
    value = stats.get("nonzero") if isinstance(stats, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def collapses(evals: Iterable[dict[str, Any]], stage: int | None = None) -> list[Collapse]:
    """The latents collapsed at the newest of one step's eval events (given in order),
    each with the first epoch of its unbroken collapsed run, among those the step's
    ``stage`` puts a rate on (:data:`RATED_IN`; all of them when the stage is unknown).
    Events without latent statistics (older runs) say nothing."""
    events = [e for e in evals if isinstance(e, dict) and isinstance(e.get("latents"), dict)]
    found = []
    for latent in MEANING:
        if stage is not None and stage not in RATED_IN[latent]:
            continue
        since, fraction = None, None
        for event in events:
            value = nonzero_fraction(event, latent)
            if value is not None and value < COLLAPSE_BELOW:
                if fraction is None:
                    since = event.get("epoch") if isinstance(event.get("epoch"), int) else None
                fraction = value
            else:
                since, fraction = None, None
        if fraction is not None:
            found.append(Collapse(latent, since, fraction))
    return found


def stage_of(events: Iterable[dict[str, Any]]) -> int | None:
    """The stage a step's events report (its step_start), if any."""
    for event in events:
        if event.get("event") == "step_start" and isinstance(event.get("stage"), int):
            return event["stage"]
    return None
