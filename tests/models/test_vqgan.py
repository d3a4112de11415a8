"""VQGAN / RVQ-VQGAN: index grids for f=8/16 and odd sizes, the uniform rate counted per
index over the original pixels, JSON configs and checkpoints that refuse what does not fit."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dcvc_bench.errors import UserError
from dcvc_bench.models.iframe.vq import (
    RVQCodec,
    VQGANCodec,
    fit_index_counts,
    load_vq_checkpoint,
    save_vq_checkpoint,
)
from dcvc_bench.models.vq_coding import IndexTables
from dcvc_bench.models.iframe.vq_config import CONFIG_DIR, VQConfig
from dcvc_bench.models.vqgan import VQGAN


@pytest.fixture(autouse=True)
def one_thread():
    """On a shared CPU two threads are several times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(name: str, **changes) -> VQConfig:
    data = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    data.update(changes)
    return VQConfig.from_dict(data, where=name)


def initialised(cfg: VQConfig, seed: int = 0) -> VQGAN:
    """A network whose codebooks k-means has initialised (one training-mode pass)."""
    torch.manual_seed(seed)
    model = VQGAN(cfg)
    model.train()
    model(torch.rand(4, 3, 64, 64))
    return model.eval()


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


@pytest.mark.parametrize("name, f", [("tiny_vqgan_f8", 8), ("tiny_rvq_f16", 16)])
def test_index_grid_is_ceil_h_over_f_by_ceil_w_over_f_and_output_is_cropped_back(name, f):
    cfg = config(name)
    assert cfg.downsampling == f
    model = VQGAN(cfg).eval()
    depth = cfg.num_quantizers
    for h, w in [(256, 256), (130, 170), (37, 5)]:
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            idx = model.encode_indices(x, depth)
            assert idx.shape == (1, depth, math.ceil(h / f), math.ceil(w / f))
            assert 0 <= int(idx.min()) and int(idx.max()) < cfg.codebook_size
            y = model.decode_indices(idx, (h, w))
        assert y.shape == x.shape and 0 <= float(y.min()) and float(y.max()) <= 1
    # f=8 gives 32×32 indices at 256×256, f=16 gives 16×16 (checked above through ceil).
    assert math.ceil(256 / f) == {8: 32, 16: 16}[f]


def test_training_forward_gives_reconstruction_commitment_loss_and_a_dropout_depth():
    cfg = config("tiny_rvq_f16")
    torch.manual_seed(0)
    model = VQGAN(cfg).train()
    depths = set()
    for _ in range(6):
        out = model(torch.rand(2, 3, 48, 40))
        assert out["x_hat"].shape == (2, 3, 48, 40) and out["x_hat"].requires_grad
        assert out["codebook_loss"].dim() == 0
        depths.add(out["depth"])
        used = out["indices"][:, : out["depth"]]
        assert (used >= 0).all() and (out["indices"][:, out["depth"]:] == -1).all()
    assert len(depths) > 1  # quantize_dropout trains several prefixes


@pytest.mark.parametrize("name, codec_type", [("tiny_rvq_f16", RVQCodec), ("tiny_vqgan_f8", VQGANCodec)])
def test_uniform_estimate_is_n_indices_times_layers_times_log2k_over_original_pixels(name, codec_type):
    cfg = config(name)
    model = initialised(cfg)
    codec = codec_type(model, IndexTables(fit_index_counts(model, [torch.rand(2, 3, 64, 64)])))
    x = torch.rand(2, 3, 130, 170)  # not a multiple of f in either side
    f, k = cfg.downsampling, cfg.codebook_size
    n = math.ceil(130 / f) * math.ceil(170 / f)
    assert n == {8: 17 * 22, 16: 9 * 11}[f]
    layer_range = range(1, cfg.num_quantizers + 1) if codec_type is RVQCodec else [1]
    for layers in layer_range:
        c = codec.with_rate(layers) if codec_type is RVQCodec else codec
        rates = c.rates(x)
        expected = n * layers * math.log2(k)
        assert rates["uniform"].tolist() == [expected, expected]
        assert (rates["uniform"] / (130 * 170)).tolist() == [expected / (130 * 170)] * 2
        assert (rates["real_equivalent"] <= rates["uniform"]).all()
        est = c.estimate(x)
        assert torch.equal(est.bits, rates["real_equivalent"].float())


def test_with_rate_above_the_trained_depth_is_one_line():
    model = initialised(config("tiny_rvq_f16"))
    codec = RVQCodec(model, IndexTables(fit_index_counts(model, [torch.rand(1, 3, 32, 32)])))
    assert codec.rate_knob == "layers" and codec.layers == 8
    assert codec.with_rate(3).layers == 3 and codec.layers == 8
    for bad in (9, 0, 2.0, True):
        with pytest.raises(UserError) as exc:
            codec.with_rate(bad)
        assert "trained with 8 layers" in one_line(exc)
    with pytest.raises(UserError):
        RVQCodec(model, codec.tables, layers=12)
    assert len({codec.with_rate(n).identity() for n in (1, 2, 8)}) == 3
    vq = initialised(config("tiny_vqgan_f8"))
    vq_codec = VQGANCodec(vq, IndexTables(fit_index_counts(vq, [torch.rand(1, 3, 32, 32)])))
    assert vq_codec.rate_knob is None
    with pytest.raises(UserError) as exc:
        vq_codec.with_rate(2)
    assert "no rate knob" in one_line(exc)


# --------------------------------------------------------------------------- configs


def write(tmp_path, data) -> str:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_shipped_configs_parse_with_their_grids():
    expected = {"vqgan_f16": 16, "vqgan_f8": 8, "rvq_f16_8": 16, "tiny_rvq_f2": 2, "tiny_rvq_f16": 16,
                "tiny_vqgan_f16": 16, "tiny_vqgan_f8": 8}
    for path in sorted(CONFIG_DIR.glob("*.json")):
        cfg = VQConfig.from_json(path)
        assert cfg.downsampling == expected.pop(path.stem)
        assert VQConfig.from_dict(json.loads(cfg.to_json())) == cfg  # the stored form round-trips
    assert not expected
    assert VQConfig.from_json(CONFIG_DIR / "rvq_f16_8.json").num_quantizers == 8


@pytest.mark.parametrize("change, key", [
    ({"n_embed": 1024}, "n_embed"),
    ({"quantizer": {"decay": 0.9, "dacay": 0.9}}, "quantizer.dacay"),
])
def test_config_with_an_unknown_key_names_it(tmp_path, change, key):
    data = json.loads((CONFIG_DIR / "tiny_rvq_f16.json").read_text()) | change
    with pytest.raises(UserError) as exc:
        VQConfig.from_json(write(tmp_path, data))
    text = one_line(exc)
    assert f"unknown key '{key}'" in text and "c.json" in text


@pytest.mark.parametrize("key", ["ch_mult", "codebook_size", "num_quantizers", "family"])
def test_config_with_a_missing_key_names_it(tmp_path, key):
    data = json.loads((CONFIG_DIR / "tiny_rvq_f16.json").read_text())
    del data[key]
    with pytest.raises(UserError) as exc:
        VQConfig.from_json(write(tmp_path, data))
    assert f"missing key '{key}'" in one_line(exc)


@pytest.mark.parametrize("change, words", [
    ({"codebook_size": 100}, "power of two"),
    ({"ch_mult": []}, "'ch_mult'"),
    ({"ch": 10}, "divisible"),
    ({"num_quantizers": 2}, "one codebook"),
    ({"quantizer": {"quantize_dropout": True}}, "quantizer.quantize_dropout"),
])
def test_config_values_that_cannot_work_are_one_line(tmp_path, change, words):
    data = json.loads((CONFIG_DIR / "tiny_vqgan_f8.json").read_text()) | change
    with pytest.raises(UserError) as exc:
        VQConfig.from_json(write(tmp_path, data))
    assert words in one_line(exc)


def test_config_file_that_is_not_json_or_absent_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{ nope")
    for path in (bad, tmp_path / "absent.json"):
        with pytest.raises(UserError) as exc:
            VQConfig.from_json(path)
        assert path.name in one_line(exc)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trips_weights_config_and_tables(tmp_path):
    cfg = config("tiny_rvq_f16")
    model = initialised(cfg)
    counts = fit_index_counts(model, [torch.rand(2, 3, 64, 64)])
    path = save_vq_checkpoint(tmp_path / "vq.pth", model, counts)
    loaded, tables = load_vq_checkpoint(path, cfg)
    assert loaded.cfg == cfg and not loaded.training
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert (tables.counts == counts).all() and tables.digest() == IndexTables(counts).digest()
    a = RVQCodec(model, IndexTables(counts))
    b = RVQCodec.from_files(CONFIG_DIR / "tiny_rvq_f16.json", path)
    assert a.identity() == b.identity()
    other = counts.copy()
    other[0, 0] += 1000
    assert RVQCodec(model, IndexTables(other)).identity() != a.identity()


def test_checkpoint_that_does_not_fit_its_config_is_refused_in_one_line(tmp_path):
    cfg = config("tiny_rvq_f16")
    model = initialised(cfg)
    counts = fit_index_counts(model, [torch.rand(1, 3, 32, 32)])
    path = save_vq_checkpoint(tmp_path / "vq.pth", model, counts)

    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(path, config("tiny_rvq_f16", codebook_size=128))
    assert "'codebook_size' is 64 in the checkpoint, 128 in the config" in one_line(exc)

    state = torch.load(path, weights_only=True)
    state["state_dict"]["quant_conv.weight"] = torch.zeros(3, 3, 1, 1)
    torch.save(state, tmp_path / "bad_weights.pth")
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(tmp_path / "bad_weights.pth", cfg)
    assert "weights do not fit" in one_line(exc)

    state = torch.load(path, weights_only=True)
    state["index_counts"] = state["index_counts"][:4]
    torch.save(state, tmp_path / "bad_counts.pth")
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(tmp_path / "bad_counts.pth", cfg)
    assert "index_counts must be 8×64" in one_line(exc)

    torch.save({"model_state_dict": model.state_dict()}, tmp_path / "other.pth")
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(tmp_path / "other.pth", cfg)
    assert "not a dcvc-bench VQ checkpoint" in one_line(exc)

    (tmp_path / "torn.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(tmp_path / "torn.pth", cfg)
    assert "not a readable checkpoint" in one_line(exc)

    with pytest.raises(UserError) as exc:
        VQGANCodec.from_files(None, path)
    assert "--i_frame_type rvq" in one_line(exc)


def test_checkpoint_with_code_inside_is_refused(tmp_path):
    cfg = config("tiny_vqgan_f8")
    model = initialised(cfg)
    path = save_vq_checkpoint(tmp_path / "vq.pth", model, fit_index_counts(model, [torch.rand(1, 3, 32, 32)]))
    state = torch.load(path, weights_only=True)
    state["extra"] = print  # a callable: weights_only loading must refuse it
    torch.save(state, tmp_path / "code.pth")
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(tmp_path / "code.pth", cfg)
    assert "weights_only" in one_line(exc)


def test_untrained_codebooks_are_refused(tmp_path):
    cfg = config("tiny_vqgan_f8")
    model = VQGAN(cfg)  # k-means never ran
    path = save_vq_checkpoint(tmp_path / "vq.pth", model, torch.zeros(1, 256, dtype=torch.long).numpy())
    with pytest.raises(UserError) as exc:
        load_vq_checkpoint(path, cfg)
    assert "never initialised" in one_line(exc)
