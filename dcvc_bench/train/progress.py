"""Human-friendly progress of a training step: one updating line on a terminal, one plain
line per epoch otherwise (logs stay readable). Events are the machine-readable record."""

from __future__ import annotations

import sys
import time
from typing import Any

from dcvc_bench.health import collapses


class Progress:
    def __init__(self, enabled: bool = True, stream=None):
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._label, self._total, self._t0, self._last = "", 0, time.time(), ""

    def start_epoch(self, step: str, epoch: int, epochs: int, iters: int) -> None:
        self._label = f"{step} epoch {epoch + 1}/{epochs}"
        self._total, self._t0 = iters, time.time()

    def update(self, it: int, loss: float, bpp: float, psnr: float, lr: float) -> None:
        if not self.enabled:
            return
        elapsed = time.time() - self._t0
        eta = elapsed / max(it, 1) * (self._total - it)
        self._last = (f"{self._label} [{it}/{self._total}] loss {loss:.4f} bpp {bpp:.4f} "
                      f"psnr {psnr:.2f} lr {lr:.2e} eta {eta:.0f}s")
        if self.tty:
            self.stream.write("\r\x1b[2K" + self._last)
            self.stream.flush()
        elif it == self._total:
            print(self._last, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\n")
            print(f"  {text}", file=self.stream, flush=True)

    def close(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\n")
            print(text, file=self.stream, flush=True)


def eval_note(result: dict[str, Any], history: list[dict[str, Any]], stage: int) -> str:
    """The log's line for an evaluation: the coded codec's figures, the training rate's
    measured bias, and any collapsed latent with what to check."""
    text = (f"eval: PSNR {result['psnr']:.2f} dB, BPP {result['bpp']:.4f} (coded symbols), "
            f"loss {result['loss']:.4f}" if result.get("loss") is not None else
            f"eval: PSNR {result['psnr']:.2f} dB, BPP {result['bpp']:.4f} (coded symbols)")
    bias = (result.get("train_proxy") or {}).get("bias_percent")
    if bias is not None:
        text += f"; training's likelihood rate (train events' bpp) is {bias:+.1f} % off the coded P-frame bits"
    for collapse in collapses(history, stage):
        text += f"\nWARNING {collapse.warning()}"
    return text
