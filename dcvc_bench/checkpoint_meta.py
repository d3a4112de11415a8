"""``python -m dcvc_bench.checkpoint_meta PATH...``: the sidecar fields of each checkpoint,
read from the checkpoint itself, one JSON line per path (``{"path", "meta"}``, or
``{"path", "error"}`` when it cannot be loaded).

The runner launches this (:func:`dcvc_bench.checkpoints.rebuild_sidecars`) to rebuild a
sidecar that a kill left missing or stale: loading a checkpoint needs torch, which the
control plane never imports, so it runs here, as the trainer does, in a child process.
Loading goes through the one weights-only loader; the fields are the writer's.
"""

from __future__ import annotations

import json
import sys

from dcvc_bench.checkpoints import json_safe
from dcvc_bench.errors import UserError
from dcvc_bench.checkpoint_io import META_KEYS, check_pframe, is_iframe_checkpoint, load_plain, meta_fields

__all__ = ["META_KEYS", "main", "sidecar_fields"]


def sidecar_fields(path: str) -> dict[str, object]:
    """What :func:`~dcvc_bench.checkpoint_io.save_checkpoint` puts in the sidecar of
    the checkpoint at ``path`` (before the file's size, mtime and sha256), for a P-frame
    or an I-frame training step's checkpoint."""
    state = load_plain(path, flag="sidecar rebuild")
    if not is_iframe_checkpoint(state):
        state = check_pframe(state, path, flag="sidecar rebuild")
    return json_safe(meta_fields(state))


def main(argv: list[str]) -> int:
    for path in argv:
        try:
            answer: dict[str, object] = {"path": path, "meta": sidecar_fields(path)}
            line = json.dumps(answer)
        except UserError as exc:
            line = json.dumps({"path": path, "error": str(exc)[:300]})
        except Exception as exc:  # noqa: BLE001 - whatever the loader raises, this file cannot be used
            line = json.dumps({"path": path, "error": f"not a readable checkpoint ({type(exc).__name__}: "
                                                       f"{str(exc)[:200]})"})
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
