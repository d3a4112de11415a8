"""`dcvc-bench import-checkpoint`: checkpoints in the OpenDCVCs and microsoft/DCVC layouts
(written here: random full-size weights under those layouts' key names, derived from
dcvc-bench's own model and the documented differences) import, compute what a
re-implementation of the source's forward computes, evaluate with --real and decode
bit-exactly.

The re-implementations below follow the sources' code (read, not imported): their GDN
(beta/gamma bounded by sqrt(1e-6 + 2^-36) and 2^-18, pedestal 2^-36, x / sqrt(...)),
OpenDCVCs' (scales, means) split, microsoft/DCVC's BitEstimator (per channel
x·softplus(h) + b, + tanh(x)·tanh(a); sigmoid last) and Laplace feature_probs_based_sigma.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.models.layers import GDN
from dcvc_bench.models.spynet import flow_warp
from dcvc_bench.models.video_net import DCVC

runner = CliRunner()
HEADS = ("entropy_parameters.4", "entropy_parameters_mv.4")
GDN_SUFFIXES = ("beta_reparam.pedestal", "beta_reparam.lower_bound.bound",
                "gamma_reparam.pedestal", "gamma_reparam.lower_bound.bound")
PEDESTAL = (2.0 ** -18) ** 2


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _random_net(seed: int) -> DCVC:
    """A full-size DCVC with random weights; the encoders' last convs scaled up so the
    latents are not all zero, and the predicted scales raised to about their size (random
    weights alone code nothing: every latent is 0 at the smallest scale)."""
    torch.manual_seed(seed)
    net = DCVC("dcvc")
    with torch.no_grad():
        for module, index in (("mvEncoder", 6), ("contextualEncoder", 8)):
            getattr(net, module)[index].weight.mul_(8.0)
        for head in (net.entropy_parameters[4], net.entropy_parameters_mv[4]):
            head.bias[head.bias.numel() // 2:] += 1.5  # dcvc-bench's order: (means, scales)
    return net


def _swap(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=0)
    return torch.cat((b, a), dim=0)


def opendcvcs_layout(net: DCVC) -> dict[str, torch.Tensor]:
    """The state dict OpenDCVCs' DCVC_net would hold for these weights: no GDN buffers, the
    entropy-parameters heads in (scales, means) order."""
    sd = {k: v.clone() for k, v in net.state_dict().items() if not k.endswith(GDN_SUFFIXES)}
    for head in HEADS:
        for leaf in ("weight", "bias"):
            sd[f"{head}.{leaf}"] = _swap(sd[f"{head}.{leaf}"])
    return sd


def official_layout(net: DCVC, seed: int) -> dict[str, torch.Tensor]:
    """microsoft/DCVC's DCVC_net state dict: no GDN buffers, no gaussian_conditional*,
    BitEstimator f1..f4 (h, b, a; none for f4) per hyper-latent, 'module.' prefixed as a
    DataParallel save leaves it."""
    gen = torch.Generator().manual_seed(seed)
    sd = {k: v.clone() for k, v in net.state_dict().items()
          if not k.endswith(GDN_SUFFIXES) and not k.startswith(("gaussian_conditional", "bitEstimator_z"))}
    for module in ("bitEstimator_z", "bitEstimator_z_mv"):
        for i in range(1, 5):
            for leaf in ("h", "b", "a") if i < 4 else ("h", "b"):
                sd[f"{module}.f{i}.{leaf}"] = torch.randn(1, 64, 1, 1, generator=gen) * 0.5
    return {f"module.{k}": v for k, v in sd.items()}


# -- the sources' forward, re-implemented ---------------------------------------------------

def their_gdn(x, beta, gamma, inverse):
    beta = torch.max(beta, torch.tensor((1e-6 + PEDESTAL) ** 0.5)) ** 2 - PEDESTAL
    gamma = torch.max(gamma, torch.tensor(2.0 ** -18)) ** 2 - PEDESTAL
    norm = torch.sqrt(F.conv2d(x ** 2, gamma.reshape(*gamma.shape, 1, 1), beta))
    return x * norm if inverse else x / norm


def run_seq(seq, prefix, x, sd):
    for i, layer in enumerate(seq):
        if isinstance(layer, GDN):
            x = their_gdn(x, sd[f"{prefix}.{i}.beta"], sd[f"{prefix}.{i}.gamma"], layer.inverse)
        else:
            x = layer(x)
    return x


def bit_estimator(x, sd, module):
    """microsoft/DCVC's BitEstimator: the cumulative of z per channel."""
    for i in range(1, 4):
        x = x * F.softplus(sd[f"{module}.f{i}.h"]) + sd[f"{module}.f{i}.b"]
        x = x + torch.tanh(x) * torch.tanh(sd[f"{module}.f{i}.a"])
    return torch.sigmoid(x * F.softplus(sd[f"{module}.f4.h"]) + sd[f"{module}.f4.b"])


def laplace_probs(y, means, scales):
    """feature_probs_based_sigma's probabilities, scales bounded by the smallest one a CDF
    exists for (0.01) as the imported model bounds them."""
    values = torch.round(y - means)
    dist = torch.distributions.laplace.Laplace(torch.zeros_like(scales), scales.clamp(min=0.01))
    return dist.cdf(values + 0.5) - dist.cdf(values - 0.5)


def source_forward(raw: DCVC, sd, ref, x, *, layout: str, decode: str):
    """The source's forward in eval mode, on ``raw`` (its weights loaded as they are).
    ``decode="round"``: the decoders read round(y), as its forward does; ``"coded"``: they
    read round(y - mu) + mu, as its compress()/decompress() do."""
    split = (lambda p: p.chunk(2, 1)[::-1]) if layout == "opendcvcs" else (lambda p: p.chunk(2, 1))

    def hyper(module, z):
        if layout == "opendcvcs":
            eb = getattr(raw, module)
            med = eb._get_medians().reshape(1, -1, 1, 1)
            return torch.round(z - med) + med, eb(z)[1]
        z_hat = torch.round(z)
        return z_hat, bit_estimator(z_hat + 0.5, sd, module) - bit_estimator(z_hat - 0.5, sd, module)

    def latent(y, params, ctx_model, ep, gc):
        y_round = torch.round(y)
        means, scales = split(ep(torch.cat((params, ctx_model(y_round)), dim=1)))
        if layout == "opendcvcs":
            lik = gc(y, scales, means=means)[1]
        else:
            lik = laplace_probs(y, means, scales)
        return (y_round if decode == "round" else torch.round(y - means) + means), lik

    mv_y = run_seq(raw.mvEncoder, "mvEncoder", raw.opticFlow(x, ref), sd)
    mv_z_hat, mv_z_lik = hyper("bitEstimator_z_mv", raw.mvpriorEncoder(mv_y))
    mv_y_hat, mv_y_lik = latent(mv_y, raw.mvpriorDecoder(mv_z_hat), raw.auto_regressive_mv,
                                raw.entropy_parameters_mv, raw.gaussian_conditional_mv)
    mv_up = run_seq(raw.mvDecoder_part1, "mvDecoder_part1", mv_y_hat, sd)
    mv = raw.mvDecoder_part2(torch.cat((mv_up, ref), 1)) + mv_up
    context = raw.context_refine(flow_warp(raw.feature_extract(ref), mv))
    temporal = run_seq(raw.temporalPriorEncoder, "temporalPriorEncoder", context, sd)
    y = run_seq(raw.contextualEncoder, "contextualEncoder", torch.cat((x, context), 1), sd)
    z_hat, z_lik = hyper("bitEstimator_z", raw.priorEncoder(y))
    y_hat, y_lik = latent(y, torch.cat((temporal, raw.priorDecoder(z_hat)), 1), raw.auto_regressive,
                          raw.entropy_parameters, raw.gaussian_conditional)
    feature = run_seq(raw.contextualDecoder_part1, "contextualDecoder_part1", y_hat, sd)
    x_hat = raw.contextualDecoder_part2(torch.cat((feature, context), 1))
    return {"x_hat": x_hat, "x_pred": flow_warp(ref, mv),
            "likelihoods": {"mv_z": mv_z_lik, "mv_y": mv_y_lik, "z": z_lik, "y": y_lik}}


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from dcvc_bench.data.synth import write_synthetic_clips

    (path,) = write_synthetic_clips(tmp_path_factory.mktemp("import_clip"), videos=1, frames=3,
                                    size=(64, 64), seed=3)
    return path


@pytest.fixture(scope="module")
def frames(clip_path):
    from dcvc_bench.data.video import read_frames

    return torch.from_numpy(np.ascontiguousarray(read_frames(clip_path, 0, 3).transpose(0, 3, 1, 2)))


def _import(tmp_path, source: str, sd) -> tuple:
    src, out = tmp_path / f"{source}.pth", tmp_path / f"{source}-imported.pth"
    torch.save({"epoch": 7, "model_state_dict": sd, "lambda_value": 256.0, "quality_index": 2,
                "stage": 4} if source == "opendcvcs" else sd, src)
    result = runner.invoke(app, ["import-checkpoint", "--from", source, str(src), str(out), "--i-frame", "opencv"])
    assert result.exit_code == 0, (result.output, result.exception)
    return out, result.output


def _loaded(path):
    from dcvc_bench.codec.video import load_codec

    return load_codec(path)


def _max_diff(a, b) -> float:
    return float((a - b).abs().max())


# -- tests ---------------------------------------------------------------------------------------

def test_opendcvcs_import_computes_its_forward(tmp_path, frames):
    net = _random_net(1)
    sd = opendcvcs_layout(net)
    out, printed = _import(tmp_path, "opendcvcs", sd)
    assert "swapped the output halves of entropy_parameters.4.weight" in printed
    assert "added 60 GDN buffers (15 layers" in printed and "note:" in printed and "round(y - mu) + mu" in printed
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["lambda_value"] == 256.0 and ckpt["epoch"] == 7 and not ckpt["model_options"]
    assert (out.parent / (out.name + ".json")).is_file()

    imported = DCVC("dcvc")
    imported.load_state_dict(ckpt["model_state_dict"])
    imported.eval()
    raw = DCVC("dcvc")
    raw.load_state_dict(sd, strict=False)  # the source's weights as they are (GDNs bypassed below)
    raw.eval()
    ref, x = frames[0:1].float() / 255, frames[1:2].float() / 255
    with torch.no_grad():
        ours = imported(ref, x)
        coded = source_forward(raw, sd, ref, x, layout="opendcvcs", decode="coded")
        theirs = source_forward(raw, sd, ref, x, layout="opendcvcs", decode="round")
        unswapped = raw(ref, x)
    diffs = {"x_hat": _max_diff(ours["x_hat"], coded["x_hat"]), "x_pred": _max_diff(ours["x_pred"], coded["x_pred"]),
             **{k: _max_diff(ours["likelihoods"][k], coded["likelihoods"][k]) for k in coded["likelihoods"]}}
    print("opendcvcs max abs diff vs its compress/decompress path:", diffs)
    assert max(diffs.values()) < 1e-4
    assert float(-torch.log2(ours["likelihoods"]["y"]).sum()) > 50  # the latents code something
    # its forward proper: the motion rates are the same, what follows the motion decoder is not
    for k in ("mv_z", "mv_y"):
        assert _max_diff(ours["likelihoods"][k], theirs["likelihoods"][k]) < 1e-5
    print("opendcvcs x_hat vs its forward (round(y) decoded):", _max_diff(ours["x_hat"], theirs["x_hat"]))
    assert _max_diff(ours["x_hat"], theirs["x_hat"]) > 1e-4
    # and without the swap the rates are wrong (the check can fail)
    assert _max_diff(unswapped["likelihoods"]["mv_y"], coded["likelihoods"]["mv_y"]) > 1e-3


def test_official_import_computes_its_forward_with_a_laplace(tmp_path, frames):
    net = _random_net(2)
    sd = official_layout(net, seed=5)
    out, printed = _import(tmp_path, "dcvc-official", sd)
    assert "dropped the 'module.' prefix" in printed and "mapped 22 BitEstimator parameters" in printed
    assert "Laplace" in printed and "added 60 GDN buffers" in printed
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["model_options"] == {"entropy": "laplace", "hyper_filters": [1, 1, 1]}

    codec = _loaded(out)
    assert type(codec.net.gaussian_conditional).__name__ == "LaplaceConditional"
    plain = {k[len("module."):]: v for k, v in sd.items()}
    raw = DCVC("dcvc")
    raw.load_state_dict(plain, strict=False)
    raw.eval()
    ref, x = frames[0:1].float() / 255, frames[1:2].float() / 255
    with torch.no_grad():
        ours = codec.net(ref, x)
        coded = source_forward(raw, plain, ref, x, layout="official", decode="coded")
    diffs = {"x_hat": _max_diff(ours["x_hat"], coded["x_hat"]),
             **{k: _max_diff(ours["likelihoods"][k], coded["likelihoods"][k]) for k in coded["likelihoods"]}}
    print("dcvc-official max abs diff vs its compress/decompress path:", diffs)
    assert max(diffs.values()) < 1e-4
    assert float(-torch.log2(ours["likelihoods"]["y"]).sum()) > 50
    # the same weights under a Gaussian conditional give other rates (the check can fail)
    gaussian = DCVC("dcvc", hyper_filters=(1, 1, 1))
    gaussian.load_state_dict(ckpt["model_state_dict"])
    with torch.no_grad():
        other = gaussian.eval()(ref, x)
    assert _max_diff(other["likelihoods"]["y"], coded["likelihoods"]["y"]) > 1e-3


@pytest.mark.parametrize("source", ["opendcvcs", "dcvc-official"])
def test_imported_checkpoint_evaluates_real_and_decodes_bit_exactly(tmp_path, clip_path, frames, source):
    import cv2
    import json

    from dcvc_bench.codec.video import encode_video

    net = _random_net(3)
    sd = opendcvcs_layout(net) if source == "opendcvcs" else official_layout(net, seed=6)
    out, _ = _import(tmp_path, source, sd)

    doc_path = tmp_path / "real.json"
    result = runner.invoke(app, ["eval", "--checkpoint", str(out), "--videos", str(clip_path), "--frames", "3",
                                 "--intra-period", "-1", "--device", "cpu", "--json", str(doc_path), "--no-fid",
                                 "--real"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "reproduced the encoder's frames exactly" in " ".join(result.output.split())
    (clip,) = json.loads(doc_path.read_text())["results"][0]["clips"].values()
    pframes = [f for f in clip["per_frame"] if f["kind"] == "P"]
    ratio_payload = sum(f["est_bits"] for f in pframes) / sum(f["payload_bits"] for f in pframes)
    print(f"{source}: P-frames' estimated bits / coded payload bits = {ratio_payload:.4f}; "
          f"clip est. BPP / real BPP = {clip['bpp_estimate'] / clip['bpp']:.4f}")
    assert 0.9 < ratio_payload <= 1.0

    codec = _loaded(out)
    ref, x = frames[0:1].float() / 255, frames[1:2].float() / 255
    with torch.no_grad():
        forward_bits = {k: float(v.sum()) for k, v in codec.net(ref, x)["bits"].items()}
        analysis = codec.pframe.analyse(ref, x)
    coded_bits = analysis.bits()
    print(f"{source}: forward-likelihood bits / coded symbol bits:",
          {k: round(forward_bits[k] / coded_bits[k], 4) for k in coded_bits}, {k: round(v) for k, v in coded_bits.items()})
    # the coder's CDF tables are the conditional's distribution: a coded latent symbol costs
    # -log2 of the model's likelihood at the table scale it is coded with, wherever 16-bit
    # CDFs can say so (random weights put many symbols far in the tails, where the quantised
    # CDF's floor of 2^-16 per symbol makes them cheaper than the model says)
    for name, model in (("mv_y", codec.net.gaussian_conditional_mv), ("y", codec.net.gaussian_conditional)):
        tensor = analysis.coded[name]
        idx = tensor.indexes.long()
        value = tensor.symbols.long() - torch.tensor(tensor.tables.offsets)[idx]
        likelihood = model._likelihood(tensor.symbols.float(), model.scale_table[idx]).double()
        inside = (value >= 0) & (value < torch.tensor(tensor.tables.lengths)[idx] - 2) & (likelihood > 1e-3)
        model_bits = -torch.log2(likelihood)
        rans_bits = tensor.tables.code_length(tensor.symbols, tensor.indexes)
        ratio = float(model_bits[inside].sum() / rans_bits[inside].sum())
        print(f"{source}: {name}: {int(inside.sum())} of {inside.numel()} symbols have p > 1e-3; their model "
              f"bits / rANS bits = {ratio:.5f}")
        assert int(inside.sum()) > inside.numel() // 4 and ratio == pytest.approx(1.0, abs=0.01)
        if source == "dcvc-official":  # Laplace tables: a Gaussian at the same scales is another rate
            from compressai.entropy_models import GaussianConditional

            normal = GaussianConditional(None, scale_bound=0.01)._likelihood(tensor.symbols.float(),
                                                                              model.scale_table[idx])
            other = float(-torch.log2(normal.double())[inside].sum() / rans_bits[inside].sum())
            assert abs(other - 1.0) > 0.02, other

    expected = encode_video(codec, frames, intra_period=-1)
    stream = tmp_path / "clip.dcvc"
    stream.write_bytes(expected.stream)
    result = runner.invoke(app, ["decode", str(stream), str(tmp_path / "frames"), "--checkpoint", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    pngs = sorted((tmp_path / "frames").glob("frame_*.png"))
    decoded = np.stack([cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1] for p in pngs])
    assert torch.equal(torch.from_numpy(np.ascontiguousarray(decoded.transpose(0, 3, 1, 2))), expected.decoded)


def test_a_checkpoint_of_another_layout_is_one_line(tmp_path):
    src = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 1, 1)}, src)
    result = runner.invoke(app, ["import-checkpoint", "--from", "opendcvcs", str(src), str(tmp_path / "o.pth")])
    assert result.exit_code == 2
    assert result.output.startswith("error: IN: ") and "not a DCVC state dict in the OpenDCVCs layout" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "o.pth").exists()
    result = runner.invoke(app, ["import-checkpoint", "--from", "nope", str(src), str(tmp_path / "o.pth")])
    assert result.exit_code == 2 and "unknown source layout" in result.output


def test_unknown_model_options_are_one_line(tmp_path):
    from dcvc_bench.codec.video import load_codec
    from dcvc_bench.errors import UserError

    path = tmp_path / "odd.pth"
    for options, message in (({"entropy": "cauchy"}, "entropy='cauchy'"), ({"width": 2}, "unknown model options"),
                             ({"hyper_filters": [0]}, "positive integers")):
        torch.save({"model_state_dict": DCVC("tiny").state_dict(), "model_preset": "tiny",
                    "model_options": options}, path)
        with pytest.raises(UserError, match=message) as err:
            load_codec(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
