"""The reference store: rows come back bit for bit, two batches sharing a store never
lose each other's work, damage only costs time, and rows stay out of the process."""

import os

import pytest
import torch

from autograder.reference_store import ReferenceStore

VOCAB = 151_936  # Qwen3's: one row is 0.6 MB in float32


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_rows_and_answers_come_back_bit_for_bit(tmp_path):
    store = ReferenceStore(tmp_path / "store.pt")
    rows = torch.randn(3, 7)
    store.add_rows([[1], [1, 2], [1, 2, 3]], rows)
    store.add_rows([[9]], torch.randn(1, 5, dtype=torch.bfloat16))
    store.add_answer("call", {"ids": torch.arange(4), "text": "é"}, 1.5)
    store.save()
    again = ReferenceStore(tmp_path / "store.pt")
    assert torch.equal(again.logits([1, 2, 3]), rows)
    assert again.row((9,)).dtype == torch.bfloat16
    assert again.logits([1, 4]) is None  # one prefix unknown: nothing
    assert torch.equal(again.answers["call"]["ids"], torch.arange(4)) and again.seconds == {"call": 1.5}
    assert oct((tmp_path / "store.pt").stat().st_mode & 0o777) == oct((tmp_path / "store.rows").stat().st_mode & 0o777) == "0o600"


def test_two_batches_saving_one_store_keep_both_their_rows_and_answers(tmp_path):
    first, second = ReferenceStore(tmp_path / "store.pt"), ReferenceStore(tmp_path / "store.pt")
    first.add_rows([[1]], torch.ones(1, 4))
    second.add_rows([[2]], torch.full((1, 4), 2.0))
    first.add_answer("a", 1, 0.1)
    second.add_answer("b", 2, 0.2)
    second.save()
    first.save()  # after the other one: must not drop its work
    merged = ReferenceStore(tmp_path / "store.pt")
    assert set(merged.answers) == {"a", "b"}
    assert torch.equal(merged.row((1,)), torch.ones(4)) and torch.equal(merged.row((2,)), torch.full((4,), 2.0))


def test_a_damaged_store_starts_empty_instead_of_serving_wrong_rows(tmp_path):
    store = ReferenceStore(tmp_path / "store.pt")
    store.add_rows([[1], [1, 2]], torch.randn(2, 64))
    store.add_answer("a", 1, 0.1)
    store.save()
    os.truncate(tmp_path / "store.rows", 100)  # the index points past the end now
    assert len(ReferenceStore(tmp_path / "store.pt")) == 0
    (tmp_path / "store.pt").write_bytes(b"not a store")
    assert ReferenceStore(tmp_path / "store.pt").answers == {}


def test_a_class_worth_of_rows_does_not_stay_in_the_grading_process(tmp_path):
    store = ReferenceStore(tmp_path / "store.pt")
    count = 200  # 120 MB of rows
    torch.manual_seed(0)
    row = torch.randn(VOCAB)
    before = resident_bytes()
    for i in range(count):
        store.add_rows([[i]], (row + i).unsqueeze(0))
    store.save()
    for i in range(count):
        assert torch.equal(store.row((i,)), row + i)
    grown = resident_bytes() - before
    assert grown < count * VOCAB * 4 / 4, f"the process grew by {grown / 2**20:.0f} MiB holding {count} rows"


def test_a_shared_store_is_only_read_and_what_it_lacks_is_kept_apart(tmp_path):
    """A shard's store over the class's prepared one (perhaps on a read-only mount): answers
    and rows come from the shared store, new ones go to the shard's own, and the shared
    files are never written."""
    shared = ReferenceStore(tmp_path / "class" / "store.pt")
    shared.add_rows([[1], [1, 2]], torch.randn(2, 8))
    shared.add_answer("known", [1, 2, 3], 0.5)
    shared.save()
    del shared
    snapshot = lambda: {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "class").iterdir()}  # noqa: E731
    before = snapshot()
    store = ReferenceStore(tmp_path / "shard" / "store.pt", shared=tmp_path / "class" / "store.pt")
    assert store.answers["known"] == [1, 2, 3] and store.seconds["known"] == 0.5
    assert store.logits([1, 2]) is not None and len(store) == 2
    store.add_rows([[1], [1, 2], [1, 2, 3]], torch.randn(3, 8))  # only [1, 2, 3] is new
    store.add_answer("new", "x", 0.1)
    store.save()
    assert snapshot() == before
    own = ReferenceStore(tmp_path / "shard" / "store.pt")
    assert set(own.answers) == {"new"} and len(own) == 1  # only what the shared store lacked
    again = ReferenceStore(tmp_path / "shard" / "store.pt", shared=tmp_path / "class" / "store.pt")
    assert again.logits([1, 2, 3]) is not None and set(again.answers) == {"known", "new"}
    with pytest.raises(PermissionError):
        ReferenceStore(tmp_path / "class" / "store.pt", read_only=True).add_answer("x", 1, 0.0)
