"""The Slurm job script without a cluster: settings validated, values never executed,
multi-node launch lines, `plan` printing the job scripts, USR1 a stop request.

The injection test runs the generated script with bash, with ``srun`` and ``scontrol``
stood in for by recorders on PATH (the OS boundary: the script's own text is what is
tested); the real cluster runs the same scripts in test_slurm_run.py."""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dcvc_bench.curriculum import expand, parse_curriculum, run_paths
from dcvc_bench.curriculum.command import planned_run_flags
from dcvc_bench.curriculum.launcher_spec import slurm_time_seconds
from dcvc_bench.errors import UserError
from dcvc_bench.runner.slurm_script import build_job

ROOT = Path(__file__).resolve().parents[3]
SMOKE = (ROOT / "dcvc_bench" / "curricula" / "smoke.toml").read_text()
EVIL = ["; touch {m}", "$(touch {m})", "`touch {m}`", "a\ntouch {m}", "' ; touch {m} ; '", '"; touch {m}; "']


def _cur(extra: str, text: str = SMOKE):
    return parse_curriculum(text + "\n" + extra, source="c.toml")


def _refused(extra: str) -> str:
    with pytest.raises(UserError) as err:
        _cur(extra)
    return str(err.value)


@pytest.mark.parametrize("value", EVIL)
@pytest.mark.parametrize("key", ["partition", "account", "qos", "time", "mem", "constraint"])
def test_shell_characters_in_settings_are_refused(key, value):
    text = value.format(m="/tmp/x")
    message = _refused(f'[launcher.slurm]\n{key} = {toml_str(text)}\n')
    assert f"launcher.slurm.{key}:" in message and "\n" not in message


@pytest.mark.parametrize("line", ["--mail-user=a;touch /tmp/x", "--comment=$(touch /tmp/x)", "--x=`id`",
                                  "--exclusive\n#SBATCH --wrap=id", "-p debug", "--comment=a b", "--wrap=id",
                                  "--output=/tmp/x", "touch /tmp/x"])
def test_extra_sbatch_lines_must_be_plain_flags(line):
    message = _refused(f"[launcher.slurm]\nextra_sbatch = [{toml_str(line)}]\n")
    assert "launcher.slurm.extra_sbatch[0]:" in message


def test_time_formats():
    assert [slurm_time_seconds(t) for t in ("30", "30:15", "2:00:00", "1-0", "1-2:30", "1-02:30:05")] == \
        [1800, 1815, 7200, 86400, 95400, 95405]
    for bad in ("0", "1:60", "abc", "1-24", "-1", "1:2:3:4", "1 h"):
        with pytest.raises(ValueError):
            slurm_time_seconds(bad)
    assert "signal_s: must be less than the time limit" in _refused('[launcher.slurm]\ntime = "2"\nsignal_s = 300\n')


def toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _recorders(tmp: Path) -> Path:
    """``srun`` (runs its command, as on one node, after its own options), ``accelerate``
    (writes the argv it got, NUL-separated) and ``scontrol`` (two host names)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(f"#!{sys.executable}\nimport os, sys\n"
                                  "args = sys.argv[1:]\nwhile args[0].startswith('--'):\n    args.pop(0)\n"
                                  "os.execvp(args[0], args)\n")
    (bin_dir / "accelerate").write_text(f"#!{sys.executable}\nimport os, sys\n"
                                        "open(os.environ['ARGV_OUT'], 'w').write('\\0'.join(sys.argv[1:]))\n")
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho node-a\necho node-b\n")
    for f in bin_dir.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return bin_dir


@pytest.mark.parametrize("nodes", [1, 2])
def test_values_in_paths_are_quoted_and_never_run(tmp_path, nodes):
    """Paths are free text (spaces, quotes, $, ;, backquotes all allowed): the script
    passes each as one word, and nothing of it runs."""
    marker = tmp_path / "marker"
    evil_dir = " ".join(v.format(m=marker) for v in EVIL if "\n" not in v)
    device = 'device = "cpu"' if nodes == 1 else 'device = "auto"'
    text = _with_data_dirs(SMOKE.replace('device = "cpu"', device), evil_dir)
    gpus = "gpus_per_node = 1\n" if nodes > 1 else ""
    cur = _cur(f"[launcher]\nkind = \"slurm\"\n[launcher.slurm]\nnodes = {nodes}\n{gpus}", text)
    steps = expand(cur, run_paths(cur).data_dirs)
    job = build_job(cur, steps[0], planned_run_flags(cur, steps[0], steps), run_paths(cur))
    script = tmp_path / "job.sh"
    script.write_text(job.script)
    out = tmp_path / "argv"
    env = {**os.environ, "PATH": f"{_recorders(tmp_path)}:{os.environ['PATH']}", "ARGV_OUT": str(out),
           "SLURM_JOB_ID": "7", "SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NODEID": "1"}
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    launch = ["accelerate", *out.read_text().split("\0")]  # what the launch line ran with
    assert launch[launch.index("--train_video_dir") + 1] == evil_dir
    expected = [{"$SLURM_NODEID": "1", "$DCVC_BENCH_MAIN_IP": "node-a"}.get(w, w) for w in job.argv]
    assert launch == expected
    assert ("--machine_rank" in launch) == (nodes > 1)


def _with_data_dirs(text: str, folder: str) -> str:
    """The smoke curriculum reading clips from ``folder`` instead of synthetic ones."""
    head, rest = text.split("[data.synthetic]", 1)
    rest = rest.split("[model]", 1)[1]
    return f"{head}[data]\ntrain_dir = {toml_str(folder)}\nval_dir = {toml_str(folder)}\n\n[model]{rest}"


def test_plan_of_a_two_node_curriculum_prints_job_scripts(tmp_path):
    text = SMOKE.replace('device = "cpu"', 'device = "auto"') + (
        '\n[launcher]\nkind = "slurm"\n[launcher.slurm]\nnodes = 2\ngpus_per_node = 4\npartition = "gpu"\n'
        'time = "1-00:00:00"\nport = 29511\n')
    text = text.replace("num_processes = 1", "num_processes = 4")
    (tmp_path / "two.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "plan", "two.toml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    scripts = done.stdout.split("# ---- ")[1:]
    assert len(scripts) == 9  # one per step of the smoke curriculum
    for script in scripts:
        assert "#SBATCH --nodes=2" in script and "#SBATCH --partition=gpu" in script
        assert 'DCVC_BENCH_MAIN_IP="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"' in script
        launch = next(line for line in script.splitlines() if line.startswith("srun "))
        assert "--ntasks=2 --ntasks-per-node=1" in launch
        inner = shlex.split(launch)[-1]
        assert inner.startswith("trap '' USR1; exec ")
        assert ('--num_processes 8 --num_machines 2 --machine_rank "$SLURM_NODEID" --main_process_ip '
                '"$DCVC_BENCH_MAIN_IP" --main_process_port 29511') in inner
        assert " -m dcvc_bench.train " in inner


def test_usr1_is_a_stop_request():
    from dcvc_bench.train.stopping import StopRequested

    stop = StopRequested()
    previous = stop.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop and stop.signal == signal.SIGUSR1 and stop.describe() == "by SIGUSR1"
    finally:
        stop.restore(previous)


def test_max_parallel_is_bounded_and_plan_says_it(tmp_path):
    assert "launcher.slurm.max_parallel:" in _refused("[launcher.slurm]\nmax_parallel = 0\n")
    text = SMOKE.replace('lambda = 2048', 'lambda = 2048\nquality_index = 4\n\n[[tracks]]\nlambda = 512', 1) \
        + '\n[launcher]\nkind = "slurm"\n[launcher.slurm]\nmax_parallel = 4\n'
    assert len(_cur("", text).tracks) == 2
    (tmp_path / "par.toml").write_text(text)
    done = subprocess.run([sys.executable, "-m", "dcvc_bench.cli", "plan", "par.toml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "# Slurm: each step one job; 2 tracks, up to 2 of them with a job in flight at once " \
           "([launcher.slurm] max_parallel = 4)" in done.stdout
