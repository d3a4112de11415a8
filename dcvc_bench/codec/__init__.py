"""Real entropy coding and the GOP-coding loop shared by training and evaluation."""

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()
