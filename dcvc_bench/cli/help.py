"""Help that tells the truth: the Typer app class every `dcvc-bench` command group uses.

Typer 0.29's Rich help prints a type placeholder for every option, flags included
(``--real <bool>``, as if it took a value), and writes a required positional in the usage
line as ``{run_dir}``. The plain formatter already leaves flags bare; the Rich one asks
each parameter for ``display_type_rich`` without looking at ``is_flag``. Both come from
the parameters' ``metavar`` (public Click API), so the one fix is here: before a command's
help is drawn, a flag's metavar is empty (no placeholder) and a positional's is its name
in capitals (``RUN_DIR``), written bare in the usage line when required and in brackets
when optional, as Click and POSIX usage lines do.

The Rich formatter also reads every help text as Rich markup, so "the curriculum's
[i_frame] table" lost its "[i_frame]", and it keeps a docstring's line breaks mid-sentence.
Help texts here are plain text: escaped once, paragraphs (blank-line separated) rewrapped.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup


def _plain(text: Optional[str], *, rewrap: bool) -> Optional[str]:
    """A help text as literal text for the Rich formatter (paragraphs rewrapped when asked)."""
    if not text:
        return text
    text = inspect.cleandoc(text)
    if rewrap:
        text = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
    return escape(text)


def _fix_metavars(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "help", None) and not getattr(param, "_dcvc_plain", False):
            param.help = _plain(param.help, rewrap=True)
            param._dcvc_plain = True
        if param.param_type_name == "option":
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = param.name.upper()
    return params


def _usage_pieces(command: Any, ctx: Any) -> list[str]:
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name != "argument":
            continue
        name = param.metavar
        if param.nargs != 1:
            name += "..."
        pieces.append(name if param.required else f"[{name}]")
    return pieces


class HelpCommand(TyperCommand):
    """A command whose help shows flags bare and positionals by their metavariable."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _plain(self.help, rewrap=True)
        self.epilog = _plain(self.epilog, rewrap=False)

    def get_params(self, ctx: Any) -> list[Any]:
        return _fix_metavars(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return _usage_pieces(self, ctx)


class HelpGroup(TyperGroup):
    """A command group with the same help rules as :class:`HelpCommand`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = _plain(self.help, rewrap=True)
        self.epilog = _plain(self.epilog, rewrap=False)

    def get_params(self, ctx: Any) -> list[Any]:
        return _fix_metavars(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]


class App(typer.Typer):
    """`typer.Typer` whose groups and commands use the help rules above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", HelpGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", HelpCommand)
        return super().command(*args, **kwargs)
