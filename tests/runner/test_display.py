"""What `run` prints off a terminal: a step's start, one line per epoch with a true ETA,
its evaluations and its end; never a line per iteration."""

from __future__ import annotations

import io
from pathlib import Path

from dcvc_bench.curriculum import Step, expand, load_curriculum
from dcvc_bench.runner.display import PlainDisplay, StepView

STEP = Step(track="l2048", index=0, stage=1, gop=2, epochs=3, lambda_value=2048.0, quality_index=4,
            first_in_stage=True)


def train(t: float, epoch: int, it: int) -> dict:
    return {"event": "train", "t": t, "epoch": epoch, "iter": it, "iters_per_epoch": 10, "loss": 0.5,
            "bpp": 0.25, "psnr": 30.0, "lr": 1e-4}


def epoch_events(start: float, epoch: int) -> list[dict]:
    """An epoch of 10 iterations at 1 s each, then 5 s of evaluation, then ``latest``."""
    events = [train(start + it, epoch, it) for it in range(1, 11)]
    events.append({"event": "eval", "t": start + 15, "epoch": epoch + 1, "psnr": 31.0, "bpp": 0.2})
    events.append({"event": "checkpoint", "t": start + 15, "kind": "latest", "epoch": epoch + 1})
    return events


def test_plain_display_prints_one_line_per_epoch_with_eval_and_end():
    out = io.StringIO()
    display = PlainDisplay(out)
    display.step_started(STEP, 1, 9, "fresh (random init)", attempt=1)
    display.step_event(STEP, {"event": "step_start", "t": 0.0, "start_epoch": 0, "iters_per_epoch": 10})
    for event in epoch_events(0.0, 0):
        display.step_event(STEP, event)
    display.step_ended(STEP, "done")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/9] l2048-s1g2: stage 1, GOP 2, λ 2048, 3 epoch(s); start: fresh (random init)"
    assert lines[1] == "[1/9] l2048-s1g2: eval after epoch 1: PSNR 31.00 dB, BPP 0.2000"
    assert lines[2].startswith("[1/9] l2048-s1g2: epoch 1/3  loss 0.5000  bpp 0.2500  psnr 30.00 dB  lr 1.00e-04")
    assert lines[2].endswith("ETA step 30s")  # two more epochs of 15 s each (evaluation included)
    assert lines[3].startswith("[1/9] l2048-s1g2: done after ")
    assert len(lines) == 4


def test_eta_counts_iterations_left_and_whole_epochs_after():
    view = StepView(STEP, 1, 9, "fresh", 1)
    view.apply({"event": "step_start", "t": 0.0, "start_epoch": 0, "iters_per_epoch": 10})
    assert view.eta() == (None, None)  # no speed measured yet
    for event in epoch_events(0.0, 0) + [train(16.0, 1, 1), train(18.0, 1, 3)]:
        view.apply(event)
    assert view.seconds_per_iter == 1.0 and view.seconds_per_epoch == 15.0
    epoch_left, step_left = view.eta()
    assert epoch_left == 7.0 and step_left == (1 + 7 / 10) * 15.0


def test_live_view_shows_step_position_epoch_bar_metrics_and_last_eval():
    from rich.console import Console

    from dcvc_bench.runner.display import LiveDisplay

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    display = LiveDisplay("smoke", console=console)
    try:
        display.step_started(STEP, 1, 9, "fresh (random init)", attempt=1)
        display.step_event(STEP, {"event": "step_start", "t": 0.0, "start_epoch": 0, "iters_per_epoch": 10})
        for event in epoch_events(0.0, 0) + [train(16.0, 1, 1), train(18.0, 1, 3)]:
            display.step_event(STEP, event)
        frame = io.StringIO()
        Console(file=frame, width=140, color_system=None).print(display._render())
    finally:
        display.close()
    text = frame.getvalue()
    assert "smoke step 1 of 9" in text and "l2048-s1g2  stage 1, GOP 2, λ 2048" in text
    assert "epoch 2/3" in text and "3/10 it  ETA epoch 7s, step 26s" in text
    assert "loss 0.5000  bpp 0.2500  psnr 30.00 dB  lr 1.00e-04" in text
    assert "last eval" in text and "PSNR 31.00 dB, BPP 0.2000" in text


# -- what the progress line calls its bpp
CURRICULA = Path(__file__).resolve().parents[2] / "curricula"


def _metrics_line(step) -> str:
    view = StepView(step, 1, 1, "fresh", 1, metrics={"loss": 1.0, "bpp": 0.1, "psnr": 20.0, "lr": 1e-4})
    return view.metrics_line()


def test_a_vq_iframe_steps_bpp_is_called_uniform_and_a_pframe_steps_a_likelihood():
    steps = expand(load_curriculum(CURRICULA / "rvq-smoke.toml"))
    iframe = next(s for s in steps if s.is_iframe)
    pframe = next(s for s in steps if not s.is_iframe)
    assert "(bpp: uniform" in _metrics_line(iframe)
    assert "(bpp: training likelihood" in _metrics_line(pframe)
