"""Real entropy coding and the GOP-coding loop shared by training and evaluation.

The package itself imports nothing heavy: the container parser and the stream checks
(:mod:`~dcvc_bench.codec.bitstream`, :mod:`~dcvc_bench.codec.validate`,
:mod:`~dcvc_bench.codec.files`) run without torch, so ``dcvc-bench decode`` refuses a bad
stream before paying for the model. Modules that use CompressAI call
:func:`~dcvc_bench.compat.ensure_torchvision` themselves.
"""
