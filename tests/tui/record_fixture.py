"""Record a finished run folder as the TUI tests' fixture (run by hand, not by pytest).

    cd /tmp/x && dcvc-bench run          # the embedded smoke curriculum: runs/smoke
    dcvc-bench eval --checkpoint runs/smoke --checkpoint runs/smoke/steps/l2048-s4g3/final.pth \
        --real --baselines x265 --qp 32,37   # eval/latest.json and eval/rd.json
    python tests/tui/record_fixture.py /tmp/x/runs/smoke tests/tui/fixtures/smoke-run
    python tests/tui/record_fixture.py --eval-only /tmp/x/runs/smoke tests/tui/fixtures/smoke-run

Keeps what the TUI reads: the frozen curriculum, the ledger, every step's events.jsonl and
stdout.log, the checkpoint sidecars, and the latest `dcvc-bench eval` results
(``eval/latest.json``, ``eval/rd.json``, with the absolute paths inside made relative to
the run folder's parent's parent, as ``runs/smoke/...``). Checkpoints become tiny
placeholders of the same name (the TUI only stats them); the tests' loader makes each
sidecar describe its placeholder again (see tui_helpers.py). The synthetic clips and the
PNG plots are left out. ``--eval-only`` replaces only the eval results (the recorded
training run and its snapshots stay as they are).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PLACEHOLDER = b"placeholder: the TUI reads the .pth.json sidecar, never this file\n"


def record(run_dir: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("curriculum.toml", "ledger.json"):
        shutil.copy2(run_dir / name, out / name)
    for path in sorted(run_dir.glob("steps/*/*")) + sorted(run_dir.glob("checkpoints/*/*")):
        dest = out / path.relative_to(run_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".pth":
            dest.write_bytes(PLACEHOLDER)
        elif path.name.endswith((".pth.json", "events.jsonl", "stdout.log")):
            shutil.copy2(path, dest)
    record_eval(run_dir, out)


def record_eval(run_dir: Path, out: Path) -> None:
    root = str(run_dir.resolve().parent.parent) + "/"
    for name in ("latest.json", "rd.json"):
        src = run_dir / "eval" / name
        if src.is_file():
            dest = out / "eval" / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(src.read_text(encoding="utf-8").replace(root, ""), encoding="utf-8")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--eval-only":
        record_eval(Path(args[1]), Path(args[2]))
    else:
        record(Path(args[0]), Path(args[1]))
