"""The curriculum: one TOML file -> a validated :class:`Curriculum` -> ordered :class:`Step` s.

Pure Python (pydantic, no torch): ``plan``, ``status`` and the TUI import it at startup.
The format is documented in the README ("The curriculum"); the embedded default is
:data:`DEFAULT_CURRICULUM` (``dcvc_bench/curricula/smoke.toml``).
"""

from dcvc_bench.curriculum.command import (
    NEGATABLE_FLAGS,
    RUN_FLAGS,
    RunPaths,
    accelerate_argv,
    planned_run_flags,
    previous_step,
    render_flags,
    run_paths,
)
from dcvc_bench.curriculum.expand import config_hashes, expand, step_config_hash
from dcvc_bench.curriculum.plan import (
    describe_start,
    plan_json,
    plan_rows,
    plan_summary,
    render_plan_commands,
    render_plan_table,
)
from dcvc_bench.curriculum.schema import (
    DEFAULT_CURRICULUM,
    AccelerateSpec,
    Curriculum,
    DataSpec,
    FailurePolicy,
    GopOptSpec,
    ModelSpec,
    StageSpec,
    SyntheticData,
    Track,
    TrainOptions,
    load_curriculum,
    parse_curriculum,
)
from dcvc_bench.curriculum.steps import StartKind, Step, StepKind, phase_id, producer

__all__ = [
    "DEFAULT_CURRICULUM",
    "NEGATABLE_FLAGS",
    "RUN_FLAGS",
    "AccelerateSpec",
    "Curriculum",
    "DataSpec",
    "FailurePolicy",
    "GopOptSpec",
    "ModelSpec",
    "RunPaths",
    "StageSpec",
    "StartKind",
    "Step",
    "StepKind",
    "SyntheticData",
    "Track",
    "TrainOptions",
    "accelerate_argv",
    "config_hashes",
    "describe_start",
    "expand",
    "load_curriculum",
    "parse_curriculum",
    "phase_id",
    "plan_json",
    "plan_rows",
    "plan_summary",
    "planned_run_flags",
    "previous_step",
    "producer",
    "render_flags",
    "render_plan_commands",
    "render_plan_table",
    "run_paths",
    "step_config_hash",
]
