"""The base of every curriculum table's model. Pure Python."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class CurriculumModel(BaseModel):
    """Strict, unknown keys forbidden: TOML already has types, so "1e-4" (a string) or
    true (for an int) is a mistake, and a misspelt key is one line naming it."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
