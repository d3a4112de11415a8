"""User-facing errors: one line, exit code 2, no traceback.

Raise :class:`UserError` for bad input (a missing folder, a malformed curriculum, a
checkpoint that is not ours). The CLI and the training entry point print
``error: <message>`` and exit with :data:`EXIT_USAGE`. Messages name what and where and
say what to do.
"""

from __future__ import annotations

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user. ``str(exc)`` is the single line shown to them."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))  # guarantee a single line
