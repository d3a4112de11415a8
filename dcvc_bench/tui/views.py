"""The plain view data the TUI's widgets draw: charts, tree rows, step progress,
evaluation and checkpoint rows, and what changed since the screen last looked.
Pure Python (no Textual, no torch): :class:`~dcvc_bench.tui.model.RunModel` makes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dcvc_bench.curriculum import Step


@dataclass(frozen=True)
class MetricGroup:
    """Metrics drawn on one chart (they share a unit)."""

    key: str
    title: str
    fields: tuple[str, ...]
    y_format: str = ".4g"   # tick labels (an LR reads best as 1.0e-04)


METRIC_GROUPS = (
    MetricGroup("loss", "loss", ("loss", "rec_loss", "perceptual_loss", "codebook_loss")),
    MetricGroup("psnr", "PSNR dB", ("psnr",)),
    MetricGroup("rate", "bpp", ("bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z")),
    MetricGroup("lr", "LR", ("lr",), y_format=".1e"),
    MetricGroup("fps", "frames/s", ("frames_per_s",)),
    # I-frame training steps only (P-frame steps have none of these)
    MetricGroup("gan", "GAN", ("g_loss", "d_loss")),
    MetricGroup("codebook", "codebook %", (), y_format=".0f"),  # % of entries used, one line per RVQ layer
)
#: The group drawn from the I-frame step's ``codebook`` events (usage % per layer, per epoch).
CODEBOOK_GROUP = "codebook"
#: The groups a run of P-frame steps only charts (the chart bar then fits 80 columns).
PFRAME_GROUPS = METRIC_GROUPS[:5]


def metric_groups(steps: "list[Step]") -> tuple[MetricGroup, ...]:
    """The chart groups of a run: the I-frame groups only where it trains an I-frame codec."""
    return METRIC_GROUPS if any(s.is_iframe for s in steps) else PFRAME_GROUPS
GROUPS_BY_KEY = {g.key: g for g in METRIC_GROUPS}


@dataclass(frozen=True)
class Chart:
    """Lines against epochs; ``marks`` are vertical lines (x, label) such as stage starts."""

    title: str
    lines: dict[str, tuple[list[float], list[float]]]
    marks: tuple[tuple[float, str], ...] = ()
    y_format: str = ".4g"
    x_max: float | None = None    # where the x axis ends (the track's planned epochs)

    @property
    def empty(self) -> bool:
        return not any(xs for xs, _ in self.lines.values())


@dataclass(frozen=True)
class StepRow:
    """One step as the tree shows it."""

    step: Step
    state: str        # pending | running | done | failed | interrupted | diverged | will re-run | skipped
    epochs_done: int
    start: str        # a StartKind value, or "-" when unknown
    start_text: str   # how it starts (or started), in words
    note: str         # why it (re-)runs, or the ledger's last message


@dataclass(frozen=True)
class StepProgress:
    row: StepRow
    epoch: int                    # the epoch in progress, 1-based (epochs when done)
    iter: int
    iters_per_epoch: int | None
    eta_epoch_s: float | None
    eta_step_s: float | None
    took_s: float | None          # time spent training (all attempts)
    seconds_per_iter: float | None  # measured in the current attempt
    last: dict[str, Any] | None   # the last train event
    warnings: tuple[str, ...] = ()  # collapsed latents at the newest evaluation (dcvc_bench.health)


@dataclass(frozen=True)
class EvalRow:
    step_id: str
    phase: str                    # the step within its track (s1g2)
    epoch: int | None
    model: str                    # "normal" or "EMA"
    psnr: float | None
    bpp: float | None
    ms_ssim: float | None
    rd_loss: float | None
    i_psnr: float | None
    i_bpp: float | None
    p_psnr: float | None
    p_bpp: float | None
    best: bool = False


@dataclass(frozen=True)
class CheckpointRow:
    name: str
    kind: str
    stage: int | None
    gop: int | None
    step: str                     # the phase id that wrote it (s1g2), from its sidecar
    epoch: str
    loss: float | None
    size: int
    age_s: float
    problem: str                  # why its sidecar is not trusted ('' when it is)
    next_start: bool              # the next step of the track starts from this file


@dataclass
class Changes:
    """What changed since the interface last looked (the watcher merges these)."""

    steps: bool = False                              # ledger, decisions, runner presence
    events: set[str] = field(default_factory=set)    # steps with new events
    checkpoints: set[str] = field(default_factory=set)  # tracks whose checkpoints changed
    log: bool = False
    eval_files: bool = False                         # eval/latest.json or eval/rd.json

    def __bool__(self) -> bool:
        return self.steps or bool(self.events) or bool(self.checkpoints) or self.log or self.eval_files

    def merge(self, other: Changes) -> None:
        self.steps |= other.steps
        self.events |= other.events
        self.checkpoints |= other.checkpoints
        self.log |= other.log
        self.eval_files |= other.eval_files


