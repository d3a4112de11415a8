"""Rank consistency of a multi-process step (``--num_processes N``): every process must
hold the same weights after every optimizer step, or the checkpoints rank 0 writes are
not what the other ranks trained.

DDP makes the weights equal at the start (rank 0's are broadcast when the model is
prepared) and keeps them equal by averaging the gradients; what could still break that
(a parameter updated outside the DDP module, an optimizer state loaded on one rank only,
a per-rank EMA start) is caught here: each process hashes its weights (SHA-256 of the
model's state dict, and of the EMA's shadow) and the digests are gathered on every rank.
Rank 0 writes a ``ranks`` event (``epoch``, ``iter``, ``optimizer_step``, ``digests`` in
rank order, ``consistent``, and with ``step`` checks ``batches``: each rank's digest of the
batch it trained on, which differ because every rank draws its own share of the
epoch's samples); a mismatch ends the step ``failed`` on every rank at once
(:class:`RanksDiverged`), since every rank sees the same digests.

``--check_ranks``: ``epoch`` (default) checks at every epoch's end, ``step`` after every
optimizer step too (a hash of every weight each time: for tests and debugging), ``off``
never. A single-process step has nothing to compare and checks nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch


class RanksDiverged(RuntimeError):
    """The ranks hold different weights (the message says where)."""


def weights_digest(net: torch.nn.Module, ema: Any = None) -> str:
    """SHA-256 of the model's state dict (names, dtypes, shapes and bytes, in order) and
    of the EMA's shadow when there is one."""
    h = hashlib.sha256()
    tensors = list(net.state_dict().items())
    if ema is not None:
        tensors += [(f"ema.{name}", t) for name, t in ema.shadow.items()]
    for name, tensor in tensors:
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class RankCheck:
    def __init__(self, accelerator: Any, mode: str, events: Any, step_label: str):
        self.accelerator = accelerator
        self.mode = mode if accelerator.num_processes > 1 else "off"
        self.events = events
        self.step_label = step_label
        self.optimizer_steps = 0
        self._batch: str | None = None

    def note_batch(self, batch: torch.Tensor) -> None:
        """Remember a digest of the batch being trained on (``step`` checks only)."""
        if self.mode == "step":
            self._batch = hashlib.sha256(batch.detach().to("cpu").contiguous().numpy().tobytes()).hexdigest()

    def after_optimizer_step(self, net: torch.nn.Module, ema: Any, epoch: int, iteration: int) -> None:
        self.optimizer_steps += 1
        if self.mode == "step":
            self.check(net, ema, epoch, iteration)

    def at_epoch_end(self, net: torch.nn.Module, ema: Any, epoch: int, iteration: int) -> None:
        if self.mode in ("epoch", "step"):
            self.check(net, ema, epoch, iteration)

    def check(self, net: torch.nn.Module, ema: Any, epoch: int, iteration: int) -> None:
        from accelerate.utils import gather_object

        gathered = gather_object([(weights_digest(net, ema), self._batch)])
        digests = [str(d) for d, _ in gathered]
        consistent = len(set(digests)) == 1
        self.events.emit("ranks", step=self.step_label, epoch=epoch, iter=iteration,
                         optimizer_step=self.optimizer_steps, digests=digests, consistent=consistent,
                         batches=[b for _, b in gathered] if self.mode == "step" else None)
        if not consistent:
            differ = [f"rank {i} {d[:12]}" for i, d in enumerate(digests)]
            raise RanksDiverged(f"the processes hold different weights after optimizer step "
                                f"{self.optimizer_steps} (epoch {epoch + 1}, iteration {iteration}): "
                                f"{', '.join(differ)}; the checkpoints keep rank 0's")
