"""``[launcher]``: where a curriculum's steps run. Pure Python.

``kind = "local"`` (the default): each step is an ``accelerate launch`` subprocess of the
runner. ``kind = "slurm"``: each step is one Slurm batch job (:mod:`dcvc_bench.runner.slurm_script`
builds its script, :mod:`dcvc_bench.runner.slurm_jobs` submits and follows it), with the
settings of ``[launcher.slurm]``::

    [launcher]
    kind = "slurm"

    [launcher.slurm]
    partition = "gpu"
    account = "vcodec"
    time = "2-00:00:00"        # Slurm's formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
    nodes = 1
    gpus_per_node = 4
    cpus_per_task = 16
    mem = "64G"
    extra_sbatch = ["--exclusive", "--mail-type=END"]
    signal_s = 300             # USR1 this long before the time limit: save `latest`, end interrupted
    requeue = true             # the runner resubmits a step that a time limit or preemption ended
    max_parallel = 4           # tracks with a job in flight at once (one job per track)

Every value ends up in a shell file, so each is checked here to a narrow shape (names
``[A-Za-z0-9_.-]+``, times, counts, ``--flag`` / ``--flag=value`` with a plain value) and
the script builder shell-quotes what it writes besides.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from dcvc_bench.curriculum.base import CurriculumModel
from dcvc_bench.curriculum.messages import rule as _rule

#: Slurm names (partition, account, qos): what Slurm itself accepts in practice.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: ``--constraint``: feature names joined by & or | (no brackets, counts or spaces).
_CONSTRAINT = re.compile(r"[A-Za-z0-9_.-]{1,64}([&|][A-Za-z0-9_.-]{1,64}){0,15}")
_MEM = re.compile(r"[1-9][0-9]{0,9}[KMGT]?")
#: One extra sbatch option: ``--flag`` or ``--flag=value``; the value has no blanks,
#: quotes or shell characters.
_EXTRA = re.compile(r"--[a-z][a-z0-9-]{0,40}(=[A-Za-z0-9_.,:@%/+=-]{1,200})?")
#: Options the script sets itself from the settings above (or needs as they are).
_OWN_OPTIONS = frozenset({"job-name", "output", "error", "open-mode", "chdir", "partition", "account", "qos",
                          "time", "nodes", "gpus-per-node", "cpus-per-task", "mem", "constraint", "signal",
                          "requeue", "no-requeue", "ntasks-per-node", "parsable", "test-only", "wrap"})
MAX_NODES = 1024
MAX_SIGNAL_S = 65535  # sbatch --signal's limit
MAX_PARALLEL = 256  # jobs in flight, one runner thread each
_TIME_FORMATS = "minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes or " \
                "days-hours:minutes:seconds"


def slurm_time_seconds(text: str) -> int:
    """Seconds of a Slurm time limit (``sbatch --time``'s formats); ValueError otherwise."""
    m = re.fullmatch(r"(?:(\d{1,4})-)?(\d{1,6})(?::(\d{1,2}))?(?::(\d{1,2}))?", text)
    if m is None:
        raise ValueError(text)
    days, a, b, c = m.groups()
    nums = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-H, D-H:M, D-H:M:S
        h, mi, s = (nums + [0, 0])[:3]
        total = int(days) * 86400 + h * 3600 + mi * 60 + s
        bad = h > 23 or mi > 59 or s > 59
    elif len(nums) == 1:  # M
        total, bad = nums[0] * 60, False
    elif len(nums) == 2:  # M:S
        total, bad = nums[0] * 60 + nums[1], nums[1] > 59
    else:  # H:M:S
        total, bad = nums[0] * 3600 + nums[1] * 60 + nums[2], nums[1] > 59 or nums[2] > 59
    if bad or total <= 0:
        raise ValueError(text)
    return total


def _slurm_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"must be a Slurm name of letters, digits, '_', '.', '-' (at most 64), got {value!r}")
    return value


def _slurm_time(value: str) -> str:
    try:
        slurm_time_seconds(value)
    except ValueError:
        raise ValueError(f"must be a Slurm time ({_TIME_FORMATS}), e.g. \"4:00:00\", got {value!r}") from None
    return value


def _memory(value: str) -> str:
    if not _MEM.fullmatch(value):
        raise ValueError(f'must be a size such as "4096M" or "64G" (a number and K, M, G or T), got {value!r}')
    return value


def _constraint(value: str) -> str:
    if not _CONSTRAINT.fullmatch(value):
        raise ValueError(f"must be feature names joined by & or |, e.g. \"a100&ib\", got {value!r}")
    return value


SlurmName = Annotated[str, AfterValidator(_slurm_name)]
SlurmTime = Annotated[str, AfterValidator(_slurm_time)]


class SlurmSpec(CurriculumModel):
    """``[launcher.slurm]``: the settings of every step's batch job."""

    partition: Optional[SlurmName] = None  # default: the cluster's default partition
    account: Optional[SlurmName] = None
    qos: Optional[SlurmName] = None
    time: Optional[SlurmTime] = None  # default: the partition's limit
    nodes: Annotated[int, Field(ge=1, le=MAX_NODES)] = 1
    gpus_per_node: Annotated[int, Field(ge=0, le=64)] = 0
    cpus_per_task: Annotated[int, Field(ge=1, le=1024)] = 1  # one task per node runs accelerate launch
    mem: Optional[Annotated[str, AfterValidator(_memory)]] = None  # per node
    constraint: Optional[Annotated[str, AfterValidator(_constraint)]] = None
    extra_sbatch: list[str] = Field(default_factory=list)
    signal_s: Annotated[int, Field(ge=1, le=MAX_SIGNAL_S)] = 120
    requeue: bool = True
    port: Annotated[int, Field(ge=1024, le=65535)] = 29500  # main_process_port of a multi-node step
    #: Tracks with a job in flight at once. Each track's steps stay in order (a step starts
    #: from the one before it); different tracks are independent jobs. 1: one job at a time.
    max_parallel: Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = 1

    @field_validator("extra_sbatch")
    @classmethod
    def _extra_lines(cls, lines: list[str]) -> list[str]:
        for i, line in enumerate(lines):
            if not isinstance(line, str) or not _EXTRA.fullmatch(line):
                raise _rule(f"must be \"--flag\" or \"--flag=value\" (a value without blanks, quotes or shell "
                            f"characters), got {line!r}", i)
            flag = line[2:].split("=", 1)[0]
            if flag in _OWN_OPTIONS:
                raise _rule(f"--{flag} is set by dcvc-bench itself; use the [launcher.slurm] setting instead", i)
        return lines

    @model_validator(mode="after")
    def _signal_before_limit(self) -> SlurmSpec:
        if self.time is not None and self.signal_s >= slurm_time_seconds(self.time):
            raise _rule(f"must be less than the time limit ({self.time} = {slurm_time_seconds(self.time)} s), "
                        f"got {self.signal_s}", "signal_s")
        return self

    @property
    def time_s(self) -> Optional[int]:
        return None if self.time is None else slurm_time_seconds(self.time)


class LauncherSpec(CurriculumModel):
    """``[launcher]``: ``kind`` and, for Slurm, its settings."""

    kind: Literal["local", "slurm"] = "local"
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)

    @property
    def parallel_tracks(self) -> int:
        """Tracks this launcher runs at once on its own: Slurm's ``max_parallel`` jobs, or
        one local subprocess at a time (``run --gpus`` adds one per GPU)."""
        return self.slurm.max_parallel if self.kind == "slurm" else 1


def check_launcher(cur: "object") -> None:
    """Cross-table rules of ``[launcher.slurm]`` and ``[accelerate]``."""
    acc, slurm = cur.accelerate, cur.launcher.slurm  # type: ignore[attr-defined]
    if acc.device == "cpu" and slurm.gpus_per_node:
        raise _rule(f'must be 0 with [accelerate] device = "cpu", got {slurm.gpus_per_node}',
                    "launcher", "slurm", "gpus_per_node")
    if slurm.gpus_per_node and acc.num_processes > slurm.gpus_per_node:
        raise _rule(f"[accelerate] num_processes (per node) is {acc.num_processes}, more than gpus_per_node",
                    "launcher", "slurm", "gpus_per_node")
    if acc.device == "cpu" and slurm.nodes > 1:
        raise _rule('a multi-node step needs GPUs; [accelerate] device = "cpu" runs on one node',
                    "launcher", "slurm", "nodes")
