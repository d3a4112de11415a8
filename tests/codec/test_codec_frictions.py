"""Small frictions of `encode` / `decode` (issue 14): a tiny bogus stream is refused
before the model is loaded (and before torch is imported), a file that is not a torch
checkpoint at all says "not a checkpoint", and coding times show the CPU time beside the
wall time, with a note when the machine is loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from dcvc_bench.checkpoint_io import load_plain, save_checkpoint
from dcvc_bench.cli import app
from dcvc_bench.codec.timing import load_note
from dcvc_bench.curriculum import DEFAULT_CURRICULUM
from dcvc_bench.errors import UserError

runner = CliRunner()


@pytest.fixture(scope="module")
def fresh_checkpoint(tmp_path_factory) -> Path:
    """A dcvc-bench checkpoint of a freshly initialised tiny DCVC with OpenCV JPEG I-frames."""
    from dcvc_bench.models.video_net import DCVC

    torch.manual_seed(0)
    state = {"epoch": 1, "epochs": 1, "model_state_dict": DCVC("tiny").state_dict(), "optimizer_state_dict": {},
             "loss": 1.0, "best_loss": 1.0, "global_best_loss": 1.0, "stage": 4, "quality_index": 1,
             "lambda_value": 256.0, "scheduler_state_dict": None, "is_finetuning": False, "gop_size": 3,
             "step_id": "s4g3", "rng_state": {}, "model_preset": "tiny", "kind": "final", "finished": True,
             "ema_state_dict": None, "i_frame": {"type": "opencv", "codec": "jpeg", "quality": 90}}
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "model.pth", state)


def test_a_30_byte_stream_is_refused_before_the_model_is_loaded(fresh_checkpoint, tmp_path):
    bogus = tmp_path / "bogus.dcvc"
    bogus.write_bytes(b"DCVCBNCH" + bytes(range(22)))
    assert len(bogus.read_bytes()) == 30
    code = textwrap.dedent("""
        import json, sys, time
        start = time.perf_counter()
        from dcvc_bench.codec.files import decode_file
        from dcvc_bench.errors import UserError
        try:
            decode_file(*map(__import__("pathlib").Path, sys.argv[1:4]), echo=print)
            error = None
        except UserError as exc:
            error = str(exc)
        print(json.dumps({"seconds": time.perf_counter() - start, "error": error,
                          "torch": "torch" in sys.modules}))
    """)
    out = subprocess.run([sys.executable, "-c", code, str(bogus), str(tmp_path / "out"), str(fresh_checkpoint)],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.splitlines()[-1])
    print(f"30-byte stream refused in {result['seconds']:.3f} s (import and check, torch not imported)")
    assert result["error"] and "truncated stream" in result["error"] and "bogus.dcvc" in result["error"]
    assert result["torch"] is False  # the model was never loaded
    assert result["seconds"] < 5
    assert not (tmp_path / "out").exists()


def test_a_toml_given_as_checkpoint_is_not_a_checkpoint(fresh_checkpoint, clip_path, tmp_path):
    result = runner.invoke(app, ["encode", str(clip_path), str(tmp_path / "o.dcvc"),
                                 "--checkpoint", str(DEFAULT_CURRICULUM), "--frames", "2"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error: --checkpoint")
    assert "is not a checkpoint" in result.output and "pickled" not in result.output
    assert not (tmp_path / "o.dcvc").exists()


def test_what_is_and_is_not_a_torch_file(fresh_checkpoint, tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert set(load_plain(tmp_path / "legacy.pth", "--checkpoint")) == {"w"}
    assert "model_state_dict" in load_plain(fresh_checkpoint, "--checkpoint")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "clip.pth").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(20))
    for name, why in (("other.zip", "zip archive without data.pkl"), ("empty.pth", "is empty"),
                      ("clip.pth", "neither a zip holding data.pkl nor a legacy torch pickle")):
        with pytest.raises(UserError, match="is not a checkpoint") as info:
            load_plain(tmp_path / name, "--checkpoint")
        assert why in str(info.value) and "\n" not in str(info.value)
    # a torch file cut short is still torch.load's to describe
    (tmp_path / "torn.pth").write_bytes(fresh_checkpoint.read_bytes()[:2000])
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_plain(tmp_path / "torn.pth", "--checkpoint")


def test_encode_and_decode_show_cpu_time_beside_wall_time(fresh_checkpoint, clip_path, tmp_path):
    stream = tmp_path / "c.dcvc"
    enc = runner.invoke(app, ["encode", str(clip_path), str(stream), "--checkpoint", str(fresh_checkpoint),
                              "--frames", "2"])
    assert enc.exit_code == 0, enc.output
    assert "encoded in " in enc.output and "(CPU " in enc.output
    dec = runner.invoke(app, ["decode", str(stream), str(tmp_path / "frames"), "--checkpoint", str(fresh_checkpoint)])
    assert dec.exit_code == 0, dec.output
    assert "frames decoded in " in dec.output and "CPU " in dec.output


def test_a_loaded_machine_is_said():
    note = load_note(load=5.0, cores=2)
    assert note and "load average 5.0 on 2 cores" in note
    assert load_note(load=1.5, cores=2) is None
