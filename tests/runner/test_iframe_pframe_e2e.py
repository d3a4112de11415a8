"""The real P-frame trainer on top of a trained I-frame codec: a run folder whose I-frame
step is finished (its archive a checkpoint in the contract's format: a real RVQ-VQGAN
checkpoint plus the recipe's training keys, written with torch.save and a sidecar), then
`run` launches stage 1 with ``--vqgan_checkpoint`` that archive at the track's depth."""

from __future__ import annotations

import io
import time

import pytest

from dcvc_bench.checkpoints import atomic_file, checkpoint_path, read_meta, write_sidecar
from dcvc_bench.curriculum import expand, parse_curriculum, run_paths
from dcvc_bench.runner.archive import archive_final
from dcvc_bench.runner.display import PlainDisplay
from dcvc_bench.runner.ledger import LEDGER_FILE, Ledger
from dcvc_bench.runner.resume import fingerprints
from dcvc_bench.runner.run import EXIT_OK, Runner

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CURRICULUM = """\
name = "on-rvq"
output_dir = "{out}"

[data.synthetic]
videos = 1
frames = 4
width = 32
height = 32
val_frames = 3

[model]
preset = "tiny"

[iframe_training]
type = "rvq"
config = "tiny_rvq_f2"
epochs = 1
crop_size = 32

[i_frame]
type = "rvq"
layers = 2

[train]
batch_size = 1
crop_size = 32
num_workers = 0
steps_per_epoch = 1
eval_max_frames = 3

[[tracks]]
lambda = 256
quality_index = 1

[[stages]]
stage = 1
gops = [2]
epochs = 1

[accelerate]
device = "cpu"
"""


def write_contract_checkpoint(path, tag: str) -> None:
    """An I-frame step's ``final`` as the recipe writes it: a valid VQ checkpoint (format,
    config, state_dict, index_counts, cdfs) plus the training keys, and its sidecar."""
    import numpy as np
    import torch

    from dcvc_bench.models.iframe.vq import save_vq_checkpoint
    from dcvc_bench.models.iframe.vq_config import CONFIG_DIR, VQConfig
    from dcvc_bench.models.vqgan import VQGAN

    torch.manual_seed(0)
    model = VQGAN(VQConfig.from_json(CONFIG_DIR / "tiny_rvq_f2.json"))
    model.train()
    for _ in range(50):  # k-means initialises each codebook on the first batch that reaches it
        model(torch.rand(4, 3, 32, 32))  # (quantize dropout: not every layer on every pass)
        if model.codebooks_initialised():
            break
    assert model.codebooks_initialised()
    model.eval()
    save_vq_checkpoint(path, model, np.ones((8, 16), dtype=np.int64))
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.update(epoch=1, iteration=1, optimizer_state_dict={}, disc_state_dict={}, disc_optimizer_state_dict={},
                 loss=0.5, best_loss=0.5, step_id=tag, rng={}, perceptual=False, rvq_train_layers=8,
                 rvq_frozen_layers=0)
    with atomic_file(path) as fh:
        torch.save(state, fh)
    write_sidecar(path, {"epoch": 1, "loss": 0.5, "best_loss": 0.5, "step_id": tag, "kind": "iframe",
                         "i_frame_type": "rvq"})


def test_stage_1_runs_on_the_archived_rvq_codec_at_the_tracks_depth(tmp_path):
    cur = parse_curriculum(CURRICULUM.format(out=tmp_path / "runs"), source="on-rvq.toml")
    paths = run_paths(cur)
    steps = expand(cur, paths.data_dirs)
    assert [s.id for s in steps] == ["iframe-e2e", "l256-s1g2"]
    codec_step = steps[0]
    final = paths.own_checkpoint(codec_step, "final")
    final.parent.mkdir(parents=True)
    write_contract_checkpoint(final, "e2e")
    fp = fingerprints(cur, steps)[codec_step.id]
    started = time.time()
    ledger = Ledger.load(paths.run_dir / LEDGER_FILE)
    ledger.update(codec_step.id, track="iframe", status="running", config_hash=fp.hash, config=fp.config,
                  attempts=1, epochs=1, started_at=started)
    archive_final(final, paths.final_checkpoint(codec_step.id),
                  {"id": codec_step.id, "config_hash": fp.hash, "started_at": started})
    ledger.update(codec_step.id, status="done", epochs_done=1, finished_at=time.time())

    out = io.StringIO()
    code = Runner(cur, PlainDisplay(out), stop_grace_s=30).run()
    assert code == EXIT_OK, out.getvalue() + paths.stdout_log("l256-s1g2").read_text()[-3000:]
    text = out.getvalue()
    assert "2 steps, 1 done, 1 to run" in text
    pframe = read_meta(checkpoint_path(paths.checkpoints_dir("l256"), 256.0, 1, 1, "final"))
    assert pframe["i_frame"]["type"] == "rvq" and pframe["i_frame"]["layers"] == 2
    assert pframe["i_frame"]["checkpoint"] == str(paths.final_checkpoint("iframe-e2e"))
    assert Ledger.load(paths.run_dir / LEDGER_FILE).get("l256-s1g2").status == "done"
