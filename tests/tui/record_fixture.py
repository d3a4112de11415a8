"""Record a finished run folder as the TUI tests' fixture (run by hand, not by pytest).

    cd /tmp/x && dcvc-bench run          # the embedded smoke curriculum: runs/smoke
    python tests/tui/record_fixture.py /tmp/x/runs/smoke tests/tui/fixtures/smoke-run

Keeps what the TUI reads: the frozen curriculum, the ledger, every step's events.jsonl and
stdout.log, and the checkpoint sidecars. Checkpoints become tiny placeholders of the same
name (the TUI only stats them); the tests' loader makes each sidecar describe its
placeholder again (see conftest.py). The synthetic clips are left out.
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


if __name__ == "__main__":
    record(Path(sys.argv[1]), Path(sys.argv[2]))
