"""Networks: the DCVC P-frame model, SpyNet, shared layers and the I-frame codecs."""

from dcvc_bench.compat import ensure_torchvision

ensure_torchvision()  # compressai imports torchvision; see dcvc_bench/compat.py
