"""Start and stop `dcvc-bench run` for the TUI. The TUI never trains in-process: the run
is a subprocess in its own session (stdin closed, output in ``runs/<name>/tui-run.log``),
so it survives the TUI, and stopping it is exactly a Ctrl-C in its terminal: SIGINT to
its process group, after which its step writes ``latest`` and exits."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from dcvc_bench.curriculum import load_curriculum
from dcvc_bench.errors import UserError

RUN_LOG = "tui-run.log"


class RunControl:
    """The run of one run folder, as far as this TUI can act on it."""

    def __init__(self, run_dir: Path, curriculum: Path, command: Sequence[str] | None = None):
        self.run_dir = run_dir
        self.curriculum = curriculum
        #: The program started with ``run <curriculum>`` (tests substitute a stand-in).
        self.command = list(command or [sys.executable, "-m", "dcvc_bench.cli"])
        self.process: subprocess.Popen[bytes] | None = None
        self._stopped_pid: int | None = None  # the run asked to stop (it may take a while)

    @property
    def log_path(self) -> Path:
        return self.run_dir / RUN_LOG

    def owns_live_run(self) -> bool:
        """This TUI started the run and it has not ended."""
        return self.process is not None and self.process.poll() is None

    def live_pid(self, owner: dict[str, Any] | None) -> int | None:
        """The pid of the live run: ours, or the lock owner's (another terminal's)."""
        if self.owns_live_run():
            return self.process.pid  # type: ignore[union-attr]
        pid = (owner or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def stopping(self, owner: dict[str, Any] | None) -> bool:
        """The live run was asked to stop and is still saving."""
        pid = self.live_pid(owner)
        return pid is not None and pid == self._stopped_pid

    def launch_dir(self) -> Path:
        """The directory to start `run` in so that the curriculum's run folder (relative
        paths are relative to the current directory) is this one."""
        declared = load_curriculum(self.curriculum).run_dir
        target = self.run_dir.resolve()
        base = Path.cwd() if declared.is_absolute() else target
        if not declared.is_absolute():
            for _ in declared.parts:
                base = base.parent
        if (base / declared).resolve() != target:
            raise UserError(f"{self.curriculum} runs into {declared}, which is not {self.run_dir} from any "
                            "directory; start it with `dcvc-bench run` where it was first run")
        return base

    def start(self) -> None:
        """Start (or continue) the run in the background."""
        if self.owns_live_run():
            raise UserError("the run is already going")
        cwd = self.launch_dir()
        argv = [*self.command, "run", str(self.curriculum.resolve())]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)} "
                      f"(started by dcvc-bench tui, in {cwd})\n".encode())
            log.flush()
            self.process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self, owner: dict[str, Any] | None) -> None:
        """Ask the run to stop gracefully: ours, or the one another terminal started."""
        pid = self.live_pid(owner)
        if pid is None:
            raise UserError("no run in progress")
        try:
            group = os.getpgid(pid)
            if group == os.getpgrp():  # never signal our own group (we would stop ourselves)
                os.kill(pid, signal.SIGINT)
            else:
                os.killpg(group, signal.SIGINT)
        except ProcessLookupError:
            raise UserError(f"the run (pid {pid}) has already ended") from None
        self._stopped_pid = pid

    def ended(self) -> int | None:
        """The exit code of the run this TUI started, reported once when it ends."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        self.process = None
        return code

    def last_line(self) -> str:
        """The last line `run` printed (why it ended)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(max(fh.seek(0, os.SEEK_END) - 4096, 0))
                lines = fh.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return next((line.strip() for line in reversed(lines) if line.strip()), "")
