"""Under bf16 autocast (``--mixed_precision bf16``) the entropy models (CompressAI's
EntropyBottleneck and GaussianConditional) run with autocast off on fp32 inputs, so their
likelihoods and the rate terms are fp32 computations, not only fp32 results."""

import torch

from dcvc_bench.models.video_net import DCVC

ENTROPY_MODULES = ("bitEstimator_z", "bitEstimator_z_mv", "gaussian_conditional", "gaussian_conditional_mv")


def _forward(net, ref, x, autocast: bool):
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=autocast):
        return net(ref, x)


def test_entropy_models_and_rates_run_in_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    net = DCVC("tiny").eval()
    seen: dict[str, tuple] = {}

    def hook(name):
        def record(module, args, kwargs):
            tensors = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a)]
            seen[name] = (torch.is_autocast_enabled("cpu"), {t.dtype for t in tensors})
        return record

    for name in ENTROPY_MODULES:
        getattr(net, name).register_forward_pre_hook(hook(name), with_kwargs=True)
    ref, x = torch.rand(2, 1, 3, 64, 64)
    plain = _forward(net, ref, x, autocast=False)
    mixed = _forward(net, ref, x, autocast=True)
    assert mixed["x_hat"].dtype == torch.bfloat16  # autocast is really on for the transforms
    assert set(seen) == set(ENTROPY_MODULES)
    for name, (autocast_on, dtypes) in seen.items():
        assert not autocast_on, f"{name} ran under autocast"
        assert dtypes == {torch.float32}, f"{name} got {dtypes}"
    for name in ("y", "z", "mv_y", "mv_z"):
        assert mixed["likelihoods"][name].dtype == torch.float32, name
        assert mixed["bits"][name].dtype == torch.float32, name
    for term in ("bpp", "bpp_y", "bpp_z", "bpp_mv_y", "bpp_mv_z"):
        assert mixed[term].dtype == torch.float32, term
    # Only the transforms see bf16 rounding: the total rate stays near the fp32 forward's.
    assert torch.allclose(mixed["bpp"], plain["bpp"], rtol=0.05)
