"""`python -m dcvc_bench.train.iframe` / `accelerate launch -m dcvc_bench.train.iframe`: one
I-frame training step. Flags are validated before torch is imported."""

import sys

from dcvc_bench.train.entry import run_step
from dcvc_bench.train.iframe.args import parse_args

if __name__ == "__main__":
    sys.exit(run_step(parse_args, "dcvc_bench.train.iframe.recipe"))
