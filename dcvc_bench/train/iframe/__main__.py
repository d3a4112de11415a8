"""`python -m dcvc_bench.train.iframe` / `accelerate launch -m dcvc_bench.train.iframe`: one
I-frame training step. Flags are validated before torch is imported."""

import sys

from dcvc_bench.errors import EXIT_USAGE, UserError
from dcvc_bench.train.iframe.args import parse_args


def _main() -> int:
    try:
        parse_args(sys.argv[1:])
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    from dcvc_bench.train.iframe.recipe import main

    return main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(_main())
