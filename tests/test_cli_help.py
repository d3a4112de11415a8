"""Every `--help` tells the truth: flags without value placeholders, positionals by their
metavariable, every option described; `--version`; the trainers' help shows defaults."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from dcvc_bench.cli import app

runner = CliRunner()
WIDE = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}


def _commands(cmd, path: tuple[str, ...] = ()) -> list:
    out = [(path, cmd)]
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):  # Typer vendors Click: duck-typed
        out += _commands(sub, (*path, name))
    return out


ALL = _commands(typer.main.get_command(app))


def test_every_command_is_walked() -> None:
    names = {" ".join(p) for p, _ in ALL}
    assert {"", "eval", "eval-iframe", "status", "decode", "data synth", "bench codec"} <= names


@pytest.mark.parametrize("path,cmd", ALL, ids=[" ".join(p) or "dcvc-bench" for p, _ in ALL])
def test_help_has_no_bool_placeholder_no_brace_metavar_and_describes_every_option(path, cmd) -> None:
    result = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "<bool>" not in out, out
    assert not re.search(r"\{[A-Za-z_]+\}", out), out
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    for param in cmd.params:
        if param.param_type_name == "argument":
            assert (param.metavar or param.name.upper()) in usage, usage
        if param.param_type_name == "option" and not getattr(param, "hidden", False):
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts[0]} has no help text"
    # Help texts are literal: a bracketed word is not swallowed as Rich markup.
    if path == ("eval-iframe",):
        assert "[i_frame] table" in out


def test_version_prints_the_package_metadata_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"dcvc-bench {version('dcvc-bench')}"


def test_trainer_help_shows_defaults() -> None:
    from dcvc_bench.train.args import build_parser

    text = " ".join(build_parser().format_help().split())
    for flag, default in (("--crop_size", "256"), ("--num_workers", "4"), ("--gop_size", "7"),
                          ("--checkpoint_dir", "./checkpoints")):
        assert re.search(rf"{flag} [A-Z_]+ \(default: {re.escape(default)}\)", text), (flag, text)
    assert "(default: None)" not in text


def test_iframe_trainer_help_shows_defaults() -> None:
    from dcvc_bench.train.iframe.args import build_parser

    text = " ".join(build_parser().format_help().split())
    for flag, default in (("--crop_size", "256"), ("--num_workers", "4"), ("--checkpoint_dir", "./checkpoints")):
        assert re.search(rf"{flag} [A-Z_]+ \(default: {re.escape(default)}\)", text), (flag, text)
