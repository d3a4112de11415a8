"""The I-frame training step (`python -m dcvc_bench.train.iframe`): one recipe
(:mod:`.recipe`), its flags (:mod:`.args`), one module per codec family (:mod:`.vq`,
:mod:`.compressai_model`) and the VQGAN's extra losses (:mod:`.losses`, :mod:`.depth`)."""
