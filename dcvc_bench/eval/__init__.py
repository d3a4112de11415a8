"""Metrics and evaluation (estimation and real coding), baselines, BD-rate, plots."""

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # lpips and compressai import torchvision; see dcvc_bench/compat.py
