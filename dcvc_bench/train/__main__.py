"""`python -m dcvc_bench.train` / `accelerate launch -m dcvc_bench.train`: one training step.

Flags are validated before torch is imported, so a typo costs milliseconds, not seconds.
"""

import sys

from dcvc_bench.train.args import parse_args
from dcvc_bench.train.entry import run_step

if __name__ == "__main__":
    sys.exit(run_step(parse_args, "dcvc_bench.train.loop"))
