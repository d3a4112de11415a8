"""Make ``torchvision`` importable on CPU-only torch builds. The one place this is handled.

Why: compressai and lpips import torchvision. On a machine with a CPU build of torch,
pip can only find CUDA builds of torchvision (there is no CPU wheel on PyPI); such a
wheel's compiled ops (``torchvision::nms`` & co.) do not load against CPU torch, and
``torchvision/_meta_registrations.py`` then fails at import with
``RuntimeError: operator torchvision::nms does not exist``.

Those meta registrations only describe the compiled detection ops (nms, roi_align,
deform_conv2d, ...) to ``torch.compile``; nothing in dcvc-bench, compressai or lpips uses
them. So, only when that exact error occurs, we import torchvision with an empty stand-in
for ``torchvision._meta_registrations``. Wherever torchvision loads normally (GPU
machines, matching builds) :func:`ensure_torchvision` is a no-op.

Call it before importing compressai or lpips; ``dcvc_bench.models`` and
``dcvc_bench.eval`` do so on import.
"""

from __future__ import annotations

import sys
import types

_MISSING_OP = "torchvision::"
_STATE: dict[str, bool] = {}


def ensure_torchvision() -> bool:
    """Import torchvision, working around missing compiled ops. Returns True when the
    workaround was needed (the compiled torchvision ops are then unavailable)."""
    if "patched" in _STATE:
        return _STATE["patched"]
    try:
        import torchvision  # noqa: F401
    except ModuleNotFoundError:
        _STATE["patched"] = False  # no torchvision: nothing to fix
        return False
    except RuntimeError as exc:
        if _MISSING_OP not in str(exc) or "does not exist" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision._meta_registrations")
        stub.__doc__ = "dcvc-bench stand-in: torchvision's compiled ops are not loadable here."
        sys.modules["torchvision._meta_registrations"] = stub
        import torchvision  # noqa: F401,F811

        _STATE["patched"] = True
        return True
    _STATE["patched"] = False
    return False
