"""The transaction assembler: its fast path (whole runs as arrays) and its
record-by-record path together must follow the replay rules exactly, whatever the
damage and however the records are split into buffers."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from colibri_mm.kernels.walcodec import DecodedRecords, DecodeStatus
from colibri_mm.txn.replay import (
    COMMIT,
    CommittedTransaction,
    TransactionAssembler,
    TransactionRun,
    encode_commit,
)

CHANGE = 1
Record = tuple[int, int, bytes]  # (lsn, type, payload)
Applied = tuple[int, int, list[bytes]]  # (csn, commit lsn, change payloads)


class Recorder:
    """A sink that flattens what it is given into (csn, commit LSN, payloads)."""

    def __init__(self) -> None:
        self.applied: list[Applied] = []
        self.runs = 0

    def add(self, tx: CommittedTransaction) -> None:
        self.applied.append((tx.csn, tx.commit_lsn, [r.payload.tobytes() for r in tx.records]))

    def add_run(self, run: TransactionRun) -> None:
        self.runs += 1
        first = 0
        for k, count in enumerate(run.record_counts.tolist()):
            payloads = [run.buffer[run.record_starts[i]:run.record_ends[i]].tobytes()
                        for i in range(first, first + count)]
            self.applied.append((int(run.csns[k]), int(run.commit_lsns[k]), payloads))
            first += count


def reference(records: list[Record], limit: int | None) -> tuple[list[Applied], int, int]:
    """The rules of the module docstring, written plainly: (applied, dropped, unfinished)."""
    applied: list[Applied] = []
    pending: list[Record] = []
    dropped = 0
    for lsn, kind, payload in records:
        if kind == COMMIT:
            if limit is not None and lsn > limit:
                return applied, dropped, 0
            csn = int.from_bytes(payload[:8], "little")
            count = int.from_bytes(payload[8:], "little")
            if len(pending) > count:
                dropped += 1
                pending = pending[len(pending) - count:]
            if len(pending) == count and all(p[0] == lsn - count + i
                                             for i, p in enumerate(pending)):
                applied.append((csn, lsn, [p[2] for p in pending]))
            else:
                dropped += 1
            pending = []
        else:
            if pending and pending[-1][0] + 1 != lsn:
                pending = []
                dropped += 1
            pending.append((lsn, kind, payload))
    return applied, dropped, len(pending)


def decoded(records: list[Record]) -> DecodedRecords:
    payloads = [p for _, _, p in records]
    offsets = np.zeros(len(records) + 1, np.int64)
    np.cumsum([len(p) for p in payloads], out=offsets[1:])
    return DecodedRecords(np.array([t for _, t, _ in records], np.uint8),
                          np.array([lsn for lsn, _, _ in records], np.uint64), offsets,
                          offsets[:-1].copy(), np.frombuffer(b"".join(payloads), np.uint8),
                          int(offsets[-1]), DecodeStatus.OK, -1)


@st.composite
def damaged_logs(draw: st.DrawFn) -> tuple[list[Record], list[int], int | None]:
    records: list[Record] = []
    lsn = 1
    for csn in range(1, draw(st.integers(0, 12)) + 1):
        count = draw(st.integers(0, 3))
        for i in range(count):
            records.append((lsn, CHANGE, b"c%d.%d" % (csn, i)))
            lsn += 1
        claimed = count + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
        records.append((lsn, COMMIT, encode_commit(csn, max(claimed, 0))))
        lsn += 1
    for _ in range(draw(st.integers(0, 2))):  # records lost (salvage) or never written
        if records:
            del records[draw(st.integers(0, len(records) - 1))]
    if records and draw(st.booleans()):  # a tail cut by a crash
        records = records[: draw(st.integers(0, len(records)))]
    cuts = sorted(draw(st.lists(st.integers(0, len(records)), max_size=4)))
    limit = draw(st.none() | st.integers(0, lsn))
    return records, cuts, limit


@given(damaged_logs())
def test_assembler_follows_the_rules(log: tuple[list[Record], list[int], int | None]) -> None:
    records, cuts, limit = log
    sink = Recorder()
    assembler = TransactionAssembler(sink, limit)
    for start, stop in zip([0, *cuts], [*cuts, len(records)], strict=True):
        if stop > start:
            assembler.feed(decoded(records[start:stop]))
    applied, dropped, unfinished = reference(records, limit)
    assert sink.applied == applied
    assert assembler.transactions == len(applied)
    assert assembler.dropped_transactions == dropped
    assert assembler.last_csn == (applied[-1][0] if applied else 0)
    if limit is None or all(lsn <= limit for lsn, _, _ in records):
        assert assembler.unfinished_records == unfinished


def test_an_undamaged_log_goes_through_the_fast_path() -> None:
    records: list[Record] = []
    lsn = 1
    for csn in range(1, 101):
        records.append((lsn, CHANGE, b"x%d" % csn))
        records.append((lsn + 1, COMMIT, encode_commit(csn, 1)))
        lsn += 2
    sink = Recorder()
    assembler = TransactionAssembler(sink)
    assembler.feed(decoded(records))
    assert sink.runs == 1 and len(sink.applied) == 100
    assert sink.applied[-1] == (100, 200, [b"x100"])


def test_a_gap_with_matching_counts_is_not_taken_as_whole() -> None:
    """B's COMMIT and C's change were lost: C's COMMIT still counts one change before
    it, but that change is B's (its LSN is not the one before the COMMIT)."""
    records: list[Record] = [
        (1, CHANGE, b"a"), (2, COMMIT, encode_commit(1, 1)),
        (3, CHANGE, b"b"), (6, COMMIT, encode_commit(3, 1)),
        (7, CHANGE, b"d"), (8, COMMIT, encode_commit(4, 1)),
    ]
    sink = Recorder()
    assembler = TransactionAssembler(sink)
    assembler.feed(decoded(records))
    assert sink.applied == [(1, 2, [b"a"]), (4, 8, [b"d"])]
    assert assembler.dropped_transactions == 1
