"""A curriculum file -> its text -> TOML data, with every failure one line. Pure Python.

Refused before any parsing: a file over :data:`MAX_FILE_BYTES` (a curriculum is a page of
TOML; this also stops ``/dev/zero`` or a FIFO from being read forever), a byte-order mark
(named, instead of TOML's "Invalid statement (line 1, column 1)"), text that is not
UTF-8. Refused by the parser: invalid TOML, and arrays or inline tables nested so deep
that the parser runs out of stack (``RecursionError``).
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path
from typing import Any

from dcvc_bench.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MAX_FILE_BYTES = 1024 * 1024
_BOMS = ((codecs.BOM_UTF8, "a UTF-8 byte-order mark; save it without one (as plain UTF-8)"),
         (codecs.BOM_UTF32_LE, "a UTF-32 byte-order mark; save it as plain UTF-8"),
         (codecs.BOM_UTF32_BE, "a UTF-32 byte-order mark; save it as plain UTF-8"),
         (codecs.BOM_UTF16_LE, "a UTF-16 byte-order mark; save it as plain UTF-8"),
         (codecs.BOM_UTF16_BE, "a UTF-16 byte-order mark; save it as plain UTF-8"))


def read_text(file: Path) -> str:
    """The file's text, or a UserError naming the file."""
    try:
        with open(file, "rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{file}: no such curriculum file") from None
    except IsADirectoryError:
        raise UserError(f"{file}: is a folder; give a curriculum .toml file") from None
    except OSError as exc:
        raise UserError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise UserError(f"{file}: larger than {MAX_FILE_BYTES // 1024} KiB; a curriculum is a short TOML "
                        "text file (is this the right file?)")
    for bom, what in _BOMS:  # UTF-32-LE before UTF-16-LE: it starts with the same two bytes
        if raw.startswith(bom):
            raise UserError(f"{file}: starts with {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text (byte {exc.start}); a curriculum is a TOML text file") from None


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text -> data; ``source`` prefixes every error message."""
    if text.startswith("\ufeff"):
        raise UserError(f"{source}: starts with {_BOMS[0][1]}")
    if len(text) > MAX_FILE_BYTES:
        raise UserError(f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB; a curriculum is a short TOML text")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise UserError(f"{source}: arrays or inline tables are nested too deeply to read; a curriculum "
                        "needs at most two levels (an array of tables)") from None
