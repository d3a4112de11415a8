"""``python -m dcvc_bench.cli``: the same as the `dcvc-bench` console script."""

import sys

from dcvc_bench.cli import main

sys.exit(main())
