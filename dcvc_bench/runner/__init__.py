"""The runner: executes a curriculum's steps as `accelerate launch` subprocesses.

Torch-free by rule (`status` and `plan` start in well under a second): the trainer is only
ever a subprocess, and checkpoints are read through their JSON sidecars.

- :mod:`~dcvc_bench.runner.ledger`: per-step state, written atomically;
- :mod:`~dcvc_bench.runner.lock`: one `run` per run folder;
- :mod:`~dcvc_bench.runner.resume`: skip a step or decide exactly how it starts, and why;
- :mod:`~dcvc_bench.runner.launcher`: start, follow and gracefully stop one step;
- :mod:`~dcvc_bench.runner.outcome`: how an attempt ended (done, crash, refusal, full disk);
- :mod:`~dcvc_bench.runner.archive`: a finished step's ``final`` kept as ``steps/<id>/final.pth``;
- :mod:`~dcvc_bench.runner.repair`: what a kill cut short, put back in order before deciding;
- :mod:`~dcvc_bench.runner.folder`: the run folder before any step (frozen curriculum, synthetic clips);
- :mod:`~dcvc_bench.runner.run`: the run loop (retries, roll-backs, parallel tracks);
- :mod:`~dcvc_bench.runner.status`, :mod:`~dcvc_bench.runner.display`: what users see;
- :mod:`~dcvc_bench.runner.commands`: the bodies of `plan`, `run` and `status`.
"""
