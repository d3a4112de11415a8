"""The range of every number and the shape of every name and path in a curriculum. Pure Python.

:mod:`~dcvc_bench.curriculum.schema` builds its fields from these types, so a value
outside them is one line naming the key (``data.synthetic.width: must be <= 8192, got
1000000000000000000``), never a crash hours later inside a step. The README's annotated
curriculum states each range next to its key. Why each maximum:

- Clip sides ``16..8192`` px (even: MP4 stores chroma at half size): 8192 is the largest
  frame dcvc-bench codes (:data:`dcvc_bench.codec.bitstream.MAX_SIDE`; 8K DCI is 8192 wide).
- Frames per clip ``<= 10000`` (over five minutes at 30 fps; the standard test sequences
  have 300..600), clips per folder ``<= 10000``, and at most :data:`MAX_SYNTHETIC_PIXELS`
  pixels per synthetic folder (videos x frames x width x height): about 1.5 hours of writing
  at the ~9 Mpx/s measured on a 2-core machine. More than that wants real clips in
  ``train_dir``.
- GOPs ``2..128``: a training sample holds and back-propagates through every frame of its
  GOP; the protocol's largest is 7 (DCVC evaluates with an intra period of 32).
- Epochs ``<= 10000`` per step; ``steps_per_epoch <= 10^7``; batch ``<= 1024`` per
  process; gradient accumulation ``<= 1024``; data-loader workers ``<= 256``.
- λ ``(0, 100000]``: DCVC's four rate points are 256..2048 (on [0,1] pixels).
- Learning rates ``(0, 1]`` (Adam above 1 diverges at once); ``grad_clip_max_norm <= 10000``.
- Seeds ``0..2^31-1``: accelerate's ``set_seed`` adds the process index and numpy's
  legacy seeding refuses 2^32 and above.
- ``num_processes <= 64`` (one machine), GPU ids ``0..1023``, CPU threads ``<= 1024``,
  retries ``<= 100``.
- I-frame training (``[iframe_training]``): loss weights ``0..10000`` (0 turns a term off),
  ``disc_start`` at most the iterations a step can have (epochs x steps_per_epoch maxima),
  RVQ depths ``1..64`` (the VQ payload stores the depth in 7 bits).

Names (the run's and tracks') become folder names and step ids: ``[A-Za-z0-9][A-Za-z0-9_.-]*``
and at most :data:`MAX_NAME_CHARS` characters. Paths are checked as text only (whether they
exist is :mod:`~dcvc_bench.curriculum.preflight`'s job, at `run`): no control characters
(NUL, newline, tab, ...), each part at most :data:`NAME_MAX_BYTES` bytes and the whole at
most :data:`PATH_MAX_BYTES` (Linux's limits), ``output_dir`` :data:`RUN_DIR_RESERVE_BYTES`
less, which the run folder's own names need.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_SIDE = 8192
MAX_FRAMES = 10_000
MAX_VIDEOS = 10_000
MAX_SYNTHETIC_PIXELS = 50_000_000_000
MAX_GOP = 128
MAX_EPOCHS = 10_000
MAX_STEPS_PER_EPOCH = 10_000_000
MAX_BATCH = 1024
MAX_ACCUMULATION = 1024
MAX_WORKERS = 256
MAX_LAMBDA = 100_000.0
MAX_LR = 1.0
MAX_GRAD_NORM = 10_000.0
MAX_SEED = 2**31 - 1
MAX_PROCESSES = 64
MAX_GPU_ID = 1023
MAX_THREADS = 1024
MAX_RETRIES = 100
MAX_TRACKS = 64
MAX_RVQ_LAYERS = 64
MAX_CODEBOOK = 65_536
MAX_LOSS_WEIGHT = 10_000.0
MAX_ITERATIONS = MAX_EPOCHS * MAX_STEPS_PER_EPOCH

NAME_MAX_BYTES = 255     # one folder or file name (Linux NAME_MAX)
PATH_MAX_BYTES = 4096    # a whole path (Linux PATH_MAX)
RUN_DIR_RESERVE_BYTES = 512  # <name>/checkpoints/<track>/model_dcvc_..._global_best.pth.json and temp names
MAX_NAME_CHARS = 100

# ---------------------------------------------------------------- numbers

ClipCount = Annotated[int, Field(ge=1, le=MAX_VIDEOS)]
ClipFrames = Annotated[int, Field(ge=2, le=MAX_FRAMES)]  # >= a GOP of 2
ClipSide = Annotated[int, Field(ge=16, le=MAX_SIDE, multiple_of=2)]  # MP4 stores chroma at half size
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Gop = Annotated[int, Field(ge=2, le=MAX_GOP)]  # an I-frame and at least one P-frame
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
FrameCount = Annotated[int, Field(ge=1, le=MAX_FRAMES)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
CropSize = Annotated[int, Field(ge=16, le=MAX_SIDE)]
Workers = Annotated[int, Field(ge=0, le=MAX_WORKERS)]
StepsPerEpoch = Annotated[int, Field(ge=1, le=MAX_STEPS_PER_EPOCH)]
Accumulation = Annotated[int, Field(ge=1, le=MAX_ACCUMULATION)]
Patience = Annotated[int, Field(ge=0, le=MAX_EPOCHS)]
LearningRate = Annotated[float, Field(gt=0, le=MAX_LR)]
MinLearningRate = Annotated[float, Field(ge=0, le=MAX_LR)]
GradNorm = Annotated[float, Field(gt=0, le=MAX_GRAD_NORM)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Lambda = Annotated[float, Field(gt=0, le=MAX_LAMBDA)]
Processes = Annotated[int, Field(ge=1, le=MAX_PROCESSES)]
GpuId = Annotated[int, Field(ge=0, le=MAX_GPU_ID)]
GpuIds = Annotated[list[GpuId], Field(min_length=1, max_length=MAX_GPU_ID + 1)]
Threads = Annotated[int, Field(ge=1, le=MAX_THREADS)]
Retries = Annotated[int, Field(ge=0, le=MAX_RETRIES)]
RvqLayers = Annotated[int, Field(ge=1, le=MAX_RVQ_LAYERS)]
CodebookSize = Annotated[int, Field(ge=2, le=MAX_CODEBOOK)]
LossWeight = Annotated[float, Field(ge=0, le=MAX_LOSS_WEIGHT)]  # a loss term's weight (0 turns it off)
Iterations = Annotated[int, Field(ge=0, le=MAX_ITERATIONS)]  # e.g. disc_start: iterations of one step


def is_count(value: Any, high: int) -> bool:
    """A whole number in ``1..high`` (``true`` is not a number)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= high


# ---------------------------------------------------------------- names and paths

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line quotes what the user
    wrote without pasting a 5,000-character value."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def check_name(value: str) -> str:
    """Names become folder names (run folder, checkpoint folder, step ids)."""
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"is {len(value)} characters long; a name must be at most {MAX_NAME_CHARS}")
    if not _NAME_RE.fullmatch(value):
        raise ValueError("must start with a letter or digit and contain only letters, digits, '_', '.', '-', "
                         f"got {short_repr(value)}")
    return value


def check_path(value: str, max_bytes: int = PATH_MAX_BYTES, why: str = "Linux's limit") -> str:
    """A path as text: no control characters; each part and the whole within Linux's limits."""
    for i, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"must not contain control characters, got {char!r} at character {i + 1} "
                             f"of {short_repr(value)}")
    size = len(value.encode("utf-8"))
    if size > max_bytes:
        raise ValueError(f"is {size} bytes long; must be at most {max_bytes} bytes ({why})")
    for part in value.split("/"):
        part_size = len(part.encode("utf-8"))
        if part_size > NAME_MAX_BYTES:
            raise ValueError(f"has a {part_size}-byte part ({short_repr(part, 30)}); each folder or file name "
                             f"in a path must be at most {NAME_MAX_BYTES} bytes")
    return value


def _check_output_dir(value: str) -> str:
    return check_path(value, PATH_MAX_BYTES - RUN_DIR_RESERVE_BYTES,
                      f"Linux's {PATH_MAX_BYTES}-byte limit less {RUN_DIR_RESERVE_BYTES} for the run folder's own names")


Name = Annotated[str, AfterValidator(check_name)]
PathText = Annotated[str, Field(min_length=1), AfterValidator(check_path)]
OutputDir = Annotated[str, Field(min_length=1), AfterValidator(_check_output_dir)]
