"""The `dcvc-bench` app: its command groups, `--version`, and the guard every command runs in.

No torch at module level: `dcvc-bench --help`, `plan` and `status` start in well under a
second. Every command turns a :class:`~dcvc_bench.errors.UserError` into one line on
stderr and exit code 2.
"""

from __future__ import annotations

from typing import Callable, Optional

import typer

from dcvc_bench.cli.help import App
from dcvc_bench.errors import EXIT_USAGE, UserError

app = App(
    name="dcvc-bench",
    help="Train, watch and evaluate DCVC learned video codecs from one TOML curriculum.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Examples:\n\n"
        "  dcvc-bench run                       # the embedded smoke curriculum (CPU, minutes)\n\n"
        "  dcvc-bench plan curricula/full.toml  # the 17 steps and their accelerate commands\n\n"
        "  dcvc-bench status runs/smoke\n\n"
        "  dcvc-bench tui"
    ),
)
data_app = App(help="Datasets: synthetic clips for quick runs and tests; MP4 ↔ raw YUV ↔ PNG conversion.", no_args_is_help=True)
bench_app = App(help="Benchmarks (printed figures, never timed assertions).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
export_app = App(help="Export a run's curves for other tools (TensorBoard).", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _version() -> str:
    """This installation's version, from the package metadata (the source's when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dcvc-bench")
    except PackageNotFoundError:
        from dcvc_bench import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dcvc-bench {_version()}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the installed version and exit.")) -> None:
    """Train, watch and evaluate DCVC learned video codecs from one TOML curriculum."""


def guard(fn: Callable[[], Optional[int]]) -> None:
    """Run a command body; a UserError becomes one line and exit code 2."""
    try:
        code = fn()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    if code:
        raise typer.Exit(code)
