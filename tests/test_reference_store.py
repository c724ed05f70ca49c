"""The reference store: rows come back bit for bit, two batches sharing a store never
lose each other's work, damage only costs time, and rows stay out of the process."""

import os

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
