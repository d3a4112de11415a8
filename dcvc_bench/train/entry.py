"""The entry of a training step's ``__main__``: its flags are validated before torch is
imported, so a typo costs milliseconds, not seconds; then the recipe's ``main`` runs."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from dcvc_bench.errors import EXIT_USAGE, UserError


def run_step(parse_args: Callable[[list[str]], Any], recipe: str) -> int:
    """Check ``sys.argv`` with ``parse_args`` (one line and exit 2 on bad input), then call
    ``main(argv)`` of the module ``recipe`` (imported only then)."""
    try:
        parse_args(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    return importlib.import_module(recipe).main(sys.argv[1:])
