"""Only the I-frame spec module and the I-frame registry/families name an I-frame type.

Everywhere else (trainer, evaluation, codec, CLI, benches, curriculum schema) reaches a
family through the spec and the registry, so a new family plugs in without editing them.
A quoted type name anywhere else in dcvc_bench/ fails this test, unless it is on the
allow-list below (genuine registry look-ups and help texts built from the registry).
"""

from __future__ import annotations

import re
from pathlib import Path

from dcvc_bench.curriculum.iframe_spec import I_FRAME_TYPES

PACKAGE = Path(__file__).resolve().parents[1] / "dcvc_bench"
OWNERS = ("models/iframe/", "curriculum/iframe_spec.py")
ALLOWED: set[tuple[str, str]] = set()  # (path relative to dcvc_bench/, the line stripped)


def quoted_type_names(package: Path) -> list[str]:
    pattern = re.compile(r"""["'](%s)["']""" % "|".join(map(re.escape, I_FRAME_TYPES)))
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if rel.startswith(OWNERS):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and (rel, line.strip()) not in ALLOWED:
                found.append(f"dcvc_bench/{rel}:{number}: {line.strip()}")
    return found


def test_no_module_outside_the_spec_and_the_registry_names_an_iframe_type():
    found = quoted_type_names(PACKAGE)
    assert not found, "I-frame types named outside models/iframe/ and curriculum/iframe_spec.py:\n" + "\n".join(found)


def test_the_check_sees_a_type_name(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.py").write_text('if args.i_frame_type == "opencv":\n    pass\n')
    (tmp_path / "models" / "iframe").mkdir(parents=True)
    (tmp_path / "models" / "iframe" / "opencv.py").write_text('TYPE = "opencv"\n')
    assert quoted_type_names(tmp_path) == ['dcvc_bench/train/x.py:1: if args.i_frame_type == "opencv":']
