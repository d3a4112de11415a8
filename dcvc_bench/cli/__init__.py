"""The `dcvc-bench` command line. Thin: parse, call one function, print.

One module per group of commands; importing them registers their commands on
:data:`app` in the order `--help` lists them. No torch at module level: `dcvc-bench
--help`, `plan` and `status` start in well under a second. Every command turns a
:class:`~dcvc_bench.errors.UserError` into one line on stderr and exit code 2
(:func:`~dcvc_bench.cli.app.guard`).
"""

from __future__ import annotations

from dcvc_bench.cli.app import app
from dcvc_bench.cli import pipeline, evaluate, coding, bench, data  # noqa: E402,F401  (registers the commands)

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
