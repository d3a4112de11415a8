"""The ledger: atomic whole-file writes, tolerant reads, safe under parallel tracks."""

from __future__ import annotations

import json
import threading

import pytest

from dcvc_bench.runner.ledger import Ledger


def test_update_is_saved_at_once_and_read_back(tmp_path):
    path = tmp_path / "ledger.json"
    ledger = Ledger(path)
    ledger.update("l2048-s1g2", status="running", attempts=1, config_hash="abc", pid=42)
    again = Ledger.load(path).get("l2048-s1g2")
    assert (again.status, again.attempts, again.config_hash, again.pid) == ("running", 1, "abc", 42)
    assert again.best_loss is None and again.last_eval is None


def test_missing_ledger_is_empty_without_warning(tmp_path):
    ledger = Ledger.load(tmp_path / "ledger.json")
    assert ledger.records == {} and ledger.warning is None


def test_reading_tolerates_unknown_fields_wrong_types_and_foreign_entries(tmp_path):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps({"version": 99, "future": True, "steps": [
        {"id": "a", "status": "done", "attempts": "three", "best_loss": 0.5, "color": "red"},
        {"id": "b", "status": "exploded", "epochs_done": 2.0, "last_eval": [1, 2]},
        {"status": "done"},
        "not a record",
    ]}))
    ledger = Ledger.load(path)
    assert set(ledger.records) == {"a", "b"} and ledger.warning is None
    a, b = ledger.get("a"), ledger.get("b")
    assert (a.status, a.attempts, a.best_loss) == ("done", 0, 0.5)
    assert (b.status, b.epochs_done, b.last_eval) == ("pending", 2, None)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"steps": "nope"}'])
def test_unreadable_ledger_reads_as_empty_with_a_warning(tmp_path, text):
    path = tmp_path / "ledger.json"
    path.write_text(text)
    ledger = Ledger.load(path)
    assert ledger.records == {} and str(path) in ledger.warning


def test_non_finite_numbers_are_written_as_null_so_the_file_stays_standard_json(tmp_path):
    path = tmp_path / "ledger.json"
    Ledger(path).update("s", best_loss=float("nan"), last_eval={"psnr": float("inf"), "bpp": 0.1})

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    doc = json.loads(path.read_text(), parse_constant=refuse)
    assert doc["steps"][0]["best_loss"] is None and doc["steps"][0]["last_eval"] == {"psnr": None, "bpp": 0.1}


def test_a_reader_never_sees_a_half_written_ledger(tmp_path):
    path = tmp_path / "ledger.json"
    ledger = Ledger(path)
    ledger.update("s", message="start")
    done = threading.Event()
    seen, errors = [], []

    def read() -> None:
        while not done.is_set():
            try:
                seen.append(len(json.loads(path.read_text())["steps"][0]["message"]))
            except ValueError as exc:  # a torn file
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(200):
        ledger.update("s", message="x" * (i * 50))
    done.set()
    reader.join()
    assert errors == [] and len(seen) > 0
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.json"]  # no temp file left


def test_updates_from_parallel_track_threads_are_all_kept(tmp_path):
    path = tmp_path / "ledger.json"
    ledger = Ledger(path)

    def track(name: str) -> None:
        for epoch in range(1, 21):
            ledger.update(name, status="running", epochs_done=epoch)

    threads = [threading.Thread(target=track, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = Ledger.load(path)
    assert {r.id: r.epochs_done for r in again.records.values()} == {f"t{i}": 20 for i in range(4)}


def test_update_refuses_an_unknown_status_or_field(tmp_path):
    ledger = Ledger(tmp_path / "ledger.json")
    with pytest.raises(ValueError):
        ledger.update("s", status="finished")
    with pytest.raises(AttributeError):
        ledger.update("s", colour="red")
