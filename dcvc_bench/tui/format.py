"""How numbers, sizes, durations and step states are written on screen (one place, so
every panel says the same thing the same way)."""

from __future__ import annotations

from typing import Any, Mapping

from rich.style import Style
from rich.text import Text
from textual.color import Color

from dcvc_bench.runner.display import fmt_duration, human_size

#: state -> (glyph, theme variable of its colour; None: dimmed)
STATE_GLYPHS: dict[str, tuple[str, str | None]] = {
    "pending": ("·", None),
    "running": ("▶", "accent"),
    "done": ("✓", "success"),
    "failed": ("✗", "error"),
    "interrupted": ("⏸", "warning"),
    "diverged": ("↯", "error"),
    "will re-run": ("↻", "warning"),
    "skipped": ("↷", None),
}



def num(value: Any, spec: str = ".4f") -> str:
    """A number in ``spec``, or ``-`` when there is none (a NaN written as null)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        return format(value, spec)
    return "-"


duration = fmt_duration  # the runner's formatting, so `status` and the TUI read alike
size = human_size


def age(seconds: float) -> str:
    """``4m12s``, ``3h05m``, ``10d09h``: two units at most, so an age column stays narrow
    (and the screen churns less)."""
    seconds = max(int(round(seconds)), 0)
    if seconds < 3600:
        return fmt_duration(seconds)
    minutes = seconds // 60
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def state_style(theme_variables: Mapping[str, str], state: str) -> tuple[str, Style]:
    """(glyph, Rich style) of a step state in the current theme (for Rich-text widgets
    such as the tree and tables, which do not read ``$variables``)."""
    glyph, variable = STATE_GLYPHS.get(state, ("?", None))
    if variable is None or variable not in theme_variables:
        return glyph, Style(dim=True)
    return glyph, Style(color=Color.parse(theme_variables[variable]).rich_color)


def theme_style(theme_variables: Mapping[str, str], variable: str, **extra: bool) -> Style:
    """A Rich style in the colour of a theme variable (``success``, ``warning``...)."""
    colour = theme_variables.get(variable)
    base = Style(color=Color.parse(colour).rich_color) if colour else Style()
    return base + Style(**extra)


def cell(text: str, right: bool = True, style: str | Style = "") -> Text:
    """A table cell for tables without cell padding (they fit 80 columns): one space
    before the text keeps the columns apart."""
    return Text(f" {text}", style=style, justify="right" if right else "left")
