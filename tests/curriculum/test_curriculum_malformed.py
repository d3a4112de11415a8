"""Hundreds of malformed curricula through `dcvc-bench plan`: each is one `error:` line, exit 2.

The variants are generated, not hand-picked: every key of a few valid curricula (one per
I-frame type and data source) gets each mistake that is wrong for its kind of value (wrong
type, out of range, huge, not finite, empty, 5,000 characters, control characters, deeply
nested), every table is replaced or given an unknown key, every required key is dropped,
and the file itself is damaged (byte-order marks, other encodings, over 1 MiB, binary).
A variant must never show a traceback, never print more than one line, and never quote a
5,000-character value back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from typer.testing import CliRunner

from dcvc_bench.cli import app
from dcvc_bench.curriculum.textfile import MAX_FILE_BYTES

SMOKE = Path(__file__).resolve().parents[2] / "dcvc_bench" / "curricula" / "smoke.toml"

SYNTHETIC = {
    "name": "t",
    "data": {"synthetic": {"videos": 2, "frames": 8, "width": 96, "height": 96, "seed": 0,
                           "val_videos": 1, "val_frames": 8, "val_width": 96, "val_height": 64, "val_seed": 1}},
    "model": {"preset": "tiny", "spynet_checkpoint": "spynet.pth"},
    "i_frame": {"type": "opencv", "codec": "jpeg", "quality": 90},
    "train": {"batch_size": 2, "crop_size": 64, "num_workers": 0, "learning_rate": 1e-4,
              "reset_learning_rate": 1e-4, "use_scheduler": True, "scheduler_factor": 0.5,
              "scheduler_patience": 3, "scheduler_min_lr": 1e-6, "use_ema": True, "ema_decay": 0.999,
              "evaluate_both": True, "eval_freq": 1, "eval_max_frames": 4, "eval_intra_period": 32,
              "skip_eval": False, "grad_clip_max_norm": 1.0, "gradient_accumulation_steps": 1,
              "steps_per_epoch": 3, "seed": 42, "compile": False},
    "tracks": [{"name": "hi", "lambda": 2048.0, "quality_index": 4}],
    "stages": [{"stage": 1, "gops": [2, 3], "epochs": [2, 1]},
               {"stage": 4, "gops": [2, 3], "epochs": 1, "batch_size": 1, "learning_rate": 5e-5}],
    "gop_opt": {"enabled": True, "gop": 3, "epochs": 1, "crop_size": 32},
    "accelerate": {"num_processes": 1, "mixed_precision": "no", "cpu_threads_per_process": 1, "device": "cpu"},
    "failure": {"retries": 2, "divergence_retries": 2, "divergence_lr_factor": 0.5},
}


def _with(base: dict[str, Any], **tables: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(base)), **tables}


FOLDERS = _with(SYNTHETIC, output_dir="out", data={"train_dir": "clips/train", "val_dir": "clips/val"},
                accelerate={"num_processes": 2, "gpu_ids": [0, 1], "mixed_precision": "bf16", "device": "auto"})
COMPRESSAI = _with(SYNTHETIC, i_frame={"type": "compressai", "model_name": "mbt2018", "quality": 3,
                                       "pretrained": False, "checkpoint": "i.pth"})
VQGAN = _with(SYNTHETIC, i_frame={"type": "vqgan", "config": "v.json", "checkpoint": "v.ckpt"})
RVQ = _with(SYNTHETIC, i_frame={"type": "rvq", "config": "r.json", "checkpoint": "r.pth", "layers": 4})
BASES = {"synthetic": SYNTHETIC, "folders": FOLDERS, "compressai": COMPRESSAI, "vqgan": VQGAN, "rvq": RVQ}

DEEP = 5000


class Raw(str):
    """TOML text spliced in as is (e.g. 5,000 nested brackets no dumper would write)."""


def dump_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes (\n, \u0000, \") are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(dump_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{dump_key(k)} = {dump_value(v)}" for k, v in value.items()) + "}"


def dump_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump(doc: dict[str, Any]) -> str:
    return "".join(f"{dump_key(k)} = {dump_value(v)}\n" for k, v in doc.items())


def leaves(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every key path and its value; lists of numbers are leaves, lists of tables are walked."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, i))
    else:
        yield path, node


def tables(node: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(node, dict):
        if path:
            yield path
        for key, value in node.items():
            yield from tables(value, (*path, key))
    elif isinstance(node, list) and node and isinstance(node[0], dict):
        for i, value in enumerate(node):
            yield from tables(value, (*path, i))


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    node = doc
    for part in path[:-1]:
        node = node[part]
    if value is _DROP:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DROP = object()
LONG = "a" * 5000
NESTED = Raw("[" * DEEP + "]" * DEEP)


def mistakes(value: Any) -> list[tuple[str, Any]]:
    """Values that are wrong for a key holding ``value``, whatever the key's range."""
    if isinstance(value, bool):
        return [("a string", "yes"), ("a number", 1)]
    if isinstance(value, (int, float)):
        return [("a string", "4"), ("a bool", True), ("negative", -1), ("10^18", 10**18), ("1e18", 1e18),
                ("nan", float("nan"))]
    if isinstance(value, str):
        return [("empty", ""), ("5000 characters", LONG), ("a NUL", "a\u0000b"), ("a newline", "a\nb"),
                ("a number", 7), ("5000-character folder name", f"x/{LONG}/y")]
    assert isinstance(value, list), value
    return [("empty", []), ("a string", "2, 3"), ("huge entries", [10**18]), ("float entries", [2.0]),
            ("nested entries", [[2]])]


def variants() -> Iterator[tuple[str, str, str | None]]:
    """(id, TOML text, the key the error must name or None). Every key of the synthetic
    base; of the others, the keys the synthetic base does not have."""
    seen: set[str] = set()
    synthetic_leaves = dict(leaves(SYNTHETIC))
    for base_name, base in BASES.items():
        for path, value in leaves(base):
            if base is not SYNTHETIC and synthetic_leaves.get(path, _DROP) == value:
                continue
            dotted = ".".join(map(str, path))
            for what, bad in mistakes(value):
                text = dump(replaced(base, path, bad))
                if text not in seen:
                    seen.add(text)
                    yield f"{base_name}:{dotted}={what}", text, str(path[-1])
        for path in tables(base):
            if base is not SYNTHETIC and path[0] not in ("i_frame", "data"):
                continue
            dotted = ".".join(map(str, path))
            yield f"{base_name}:{dotted}=a string", dump(replaced(base, path, "x")), str(path[-1])
            yield (f"{base_name}:{dotted}+unknown", dump(replaced(base, (*path, "zzz_unknown"), 1)),
                   "zzz_unknown")
    for path in (("name",), ("train", "batch_size"), ("stages", 0, "gops"), ("tracks", 0, "lambda")):
        yield f"{'.'.join(map(str, path))}=nested 5000 deep", dump(replaced(SYNTHETIC, path, NESTED)), None
    for key in ("name", "data", "tracks", "stages"):
        yield f"missing {key}", dump(replaced(SYNTHETIC, (key,), _DROP)), key
    for path in (("tracks", 0, "lambda"), ("tracks", 0, "quality_index"), ("stages", 0, "gops"),
                 ("stages", 0, "epochs"), ("stages", 0, "stage"), ("gop_opt", "epochs"), ("i_frame", "type")):
        yield f"missing {'.'.join(map(str, path))}", dump(replaced(SYNTHETIC, path, _DROP)), str(path[-1])
    for path in (("tracks",), ("stages",)):
        yield f"empty {path[0]}", dump(replaced(SYNTHETIC, path, [])), path[0]
    yield "65 tracks", dump(replaced(SYNTHETIC, ("tracks",), [
        {"lambda": float(100 + i), "quality_index": 1} for i in range(65)])), "tracks"
    yield "129-frame GOP", dump(replaced(SYNTHETIC, ("stages", 1, "gops"), [2, 129])), "gops"
    yield "5000 GOPs", dump(replaced(SYNTHETIC, ("stages", 1, "gops"), list(range(2, 5002)))), "gops"
    yield "cheng2020 quality 8", dump(replaced(COMPRESSAI, ("i_frame",), {
        "type": "compressai", "model_name": "cheng2020-attn", "quality": 8})), "quality"
    huge = dump(replaced(SYNTHETIC, ("data", "synthetic"), {"videos": 10000, "frames": 10000, "width": 8192,
                                                            "height": 8192}))
    yield "synthetic pixels beyond the budget", huge, "videos"


def file_variants() -> Iterator[tuple[str, bytes]]:
    """Damaged files: not curricula at all, or not text."""
    text = SMOKE.read_text(encoding="utf-8")
    yield "utf-8 byte-order mark", b"\xef\xbb\xbf" + text.encode()
    yield "utf-16", text.encode("utf-16")
    yield "utf-16-be with mark", b"\xfe\xff" + text.encode("utf-16-be")
    yield "utf-32", text.encode("utf-32")
    yield "latin-1", text.replace("smoke", "smöke").encode("latin-1")
    yield "over 1 MiB", (text + "#" * MAX_FILE_BYTES).encode()
    yield "binary", bytes(range(256)) * 4
    yield "raw NUL", text.encode().replace(b"smoke", b"sm\x00ke")
    yield "nested 5000 deep at the top", f"x = {'[' * DEEP}{']' * DEEP}\n".encode()
    yield "inline tables 5000 deep", ("x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n").encode()
    yield "dotted key 5000 deep", ("a." * DEEP + "b = 1\n").encode()
    yield "empty", b""
    yield "a JSON file", json.dumps(SYNTHETIC).encode()
    for size in (1, 20, 100, 300, 600):
        yield f"cut to {size} bytes", text.encode()[:size]


VARIANTS = list(variants())
runner = CliRunner()


def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> Any:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.toml").write_bytes(data)
    return runner.invoke(app, ["plan", "x.toml"])


def assert_one_error_line(result: Any) -> str:
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}")
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output[-2000:]
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: x.toml: "), result.stderr[:2000]
    assert len(lines[0]) < 400, lines[0][:400]
    return lines[0]


def test_there_are_hundreds_of_variants():
    assert len(VARIANTS) >= 300


def test_the_bases_are_valid(tmp_path, monkeypatch):
    for base in BASES.values():
        result = plan(tmp_path, monkeypatch, dump(base).encode())
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("text, key", [(t, k) for _, t, k in VARIANTS], ids=[i for i, _, _ in VARIANTS])
def test_a_malformed_key_is_one_line_naming_it(tmp_path, monkeypatch, text, key):
    line = assert_one_error_line(plan(tmp_path, monkeypatch, text.encode()))
    if key is not None:
        assert key in line


FILES = list(file_variants())


@pytest.mark.parametrize("data", [d for _, d in FILES], ids=[i for i, _ in FILES])
def test_a_damaged_file_is_one_line(tmp_path, monkeypatch, data):
    assert_one_error_line(plan(tmp_path, monkeypatch, data))


@pytest.mark.parametrize("cut", range(0, len(SMOKE.read_bytes()), 37))
def test_a_truncated_file_plans_or_is_one_line(tmp_path, monkeypatch, cut):
    """A file cut short may still be a valid curriculum (fewer stages): then `plan` works
    and its first line says how many steps, tracks and stages it read."""
    result = plan(tmp_path, monkeypatch, SMOKE.read_bytes()[:cut])
    if result.exit_code == 0:
        assert re.match(r"smoke: \d+ steps? = 1 track x \(\d stages?: \d+ GOP steps?", result.stdout), result.stdout
    else:
        assert_one_error_line(result)


@pytest.mark.parametrize("what, edit", [
    ("5000-character name", lambda t: t.replace('name = "smoke"', f'name = "{LONG}"')),
    ("5000-character output_dir", lambda t: t.replace('name = "smoke"', f'name = "smoke"\noutput_dir = "{LONG}"')),
    ("5000-deep arrays", lambda t: t + f"x = {'[' * DEEP}{']' * DEEP}\n"),
    ("width = 1e18", lambda t: t.replace("width = 96", "width = 1e18")),
    ("width = 10^18", lambda t: t.replace("width = 96", f"width = {10**18}")),
])
def test_plan_in_a_fresh_process_is_one_line(tmp_path, what, edit):
    """The Done-when cases, as a user runs them (a real process: its stack, its stderr)."""
    path = tmp_path / "x.toml"
    text = edit(SMOKE.read_text(encoding="utf-8"))
    assert text != SMOKE.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "plan", str(path)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(f"error: {path}: ")
