"""The inference journal on its own: JournalAppender (the server's side) and JournalReader (the worker's)."""

import json

import pytest

from iris_platform.tracking.journal import (
    CHECKPOINT_FILE,
    JournalAppender,
    JournalReader,
    Position,
    encode,
    find_record,
    segment_name,
    segment_numbers,
)

# 88 bytes a record: a segment of 200 bytes takes three records, then the appender rotates.
SEGMENT_BYTES = 200


def record(n: int) -> dict:
    return {"prediction_id": f"{n:032x}", "n": n, "pad": "x" * 20}


def appended(directory, count: int, start: int = 0, segment_bytes: int = SEGMENT_BYTES) -> JournalAppender:
    """An open appender on `directory` that has appended records start .. start+count-1."""
    journal = JournalAppender(directory, segment_bytes=segment_bytes)
    journal.open()
    for n in range(start, start + count):
        journal.append(record(n))
    return journal


def numbers_of(records) -> list[int]:
    return [r["n"] for r in records]


def write_segment(directory, number: int, data: bytes) -> None:
    (directory / segment_name(number)).write_bytes(data)


def test_records_read_back_in_order_across_segments(tmp_path):
    assert len(encode(record(0))) * 3 >= SEGMENT_BYTES > len(encode(record(0))) * 2
    journal = appended(tmp_path, 10)
    # Three records per segment: 1-3 are full, 4 holds the tenth.
    assert segment_numbers(tmp_path) == [1, 2, 3, 4]
    assert (tmp_path / segment_name(1)).read_bytes() == b"".join(encode(record(n)) for n in range(3))
    assert journal.appended == 10

    reader = JournalReader(tmp_path)
    assert reader.checkpoint == Position(1, 0)
    assert numbers_of(reader.peek(100)) == list(range(10))
    assert numbers_of(reader.peek(4)) == [0, 1, 2, 3]  # peeking consumes nothing
    # Records appended after a peek are found by the next one.
    journal.append(record(10))
    assert numbers_of(reader.peek(100)) == list(range(11))
    journal.close()
    with pytest.raises(RuntimeError, match="closed"):
        journal.append(record(11))


def test_open_starts_a_new_segment_after_every_existing_one(tmp_path):
    appended(tmp_path, 7).close()
    last = segment_numbers(tmp_path)[-1]
    second = JournalAppender(tmp_path, segment_bytes=SEGMENT_BYTES)
    assert second.open() == last + 1
    assert second.appended == 0
    second.append(record(7))
    second.close()
    assert (tmp_path / segment_name(last + 1)).read_bytes() == encode(record(7))
    assert numbers_of(JournalReader(tmp_path).peek(100)) == list(range(8))


def test_commit_moves_the_checkpoint_and_deletes_finished_segments(tmp_path):
    journal = appended(tmp_path, 10)
    reader = JournalReader(tmp_path)
    reader.peek(100)
    line = len(encode(record(0)))

    reader.commit(2)  # inside segment 1: nothing deleted yet
    assert reader.checkpoint == Position(1, 2 * line)
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text()) == {"segment": 1, "offset": 2 * line}
    assert segment_numbers(tmp_path)[0] == 1
    assert numbers_of(reader.peek(100)) == list(range(2, 10))

    reader.commit(5)  # past records 2..6: the checkpoint is at the end of segment 3's first record
    assert reader.checkpoint == Position(3, line)
    assert segment_numbers(tmp_path)[0] == 3
    assert not (tmp_path / segment_name(1)).exists() and not (tmp_path / segment_name(2)).exists()
    assert numbers_of(reader.peek(100)) == [7, 8, 9]

    reader.commit(3)
    assert numbers_of(reader.peek(100)) == []
    assert reader.checkpoint == Position(4, line)
    journal.append(record(10))  # the appender is unaffected by the worker's deletions
    assert numbers_of(reader.peek(100)) == [10]
    journal.close()


def test_a_reopened_reader_resumes_after_the_checkpoint(tmp_path):
    journal = appended(tmp_path, 10)
    reader = JournalReader(tmp_path)
    reader.peek(6)
    reader.commit(6)

    again = JournalReader(tmp_path)
    assert again.checkpoint == reader.checkpoint
    assert numbers_of(again.peek(100)) == [6, 7, 8, 9]
    again.commit(1)
    assert numbers_of(JournalReader(tmp_path).peek(100)) == [7, 8, 9]
    journal.close()


def test_without_a_checkpoint_file_the_reader_starts_at_the_oldest_segment(tmp_path):
    write_segment(tmp_path, 5, encode(record(1)))
    write_segment(tmp_path, 7, encode(record(2)))
    reader = JournalReader(tmp_path)
    assert reader.checkpoint == Position(5, 0)
    assert numbers_of(reader.peek(10)) == [1, 2]
    # A checkpoint file that is not valid JSON counts as none.
    (tmp_path / CHECKPOINT_FILE).write_text("{not json")
    assert numbers_of(JournalReader(tmp_path).peek(10)) == [1, 2]


def test_torn_last_line_of_a_finished_segment_is_dropped(tmp_path):
    torn = encode(record(2))[:-7]  # a crash cut the write: no newline
    write_segment(tmp_path, 1, encode(record(0)) + encode(record(1)) + torn)
    write_segment(tmp_path, 2, encode(record(3)) + encode(record(4)))
    reader = JournalReader(tmp_path)
    assert numbers_of(reader.peek(10)) == [0, 1, 3, 4]
    reader.commit(3)  # past record 3: segment 1 and its torn tail are gone
    assert reader.checkpoint == Position(2, len(encode(record(3))))
    assert segment_numbers(tmp_path) == [2]
    assert numbers_of(JournalReader(tmp_path).peek(10)) == [4]


def test_a_complete_line_that_is_not_json_is_skipped(tmp_path):
    write_segment(tmp_path, 1, encode(record(0)) + b"{garbage\n" + encode(record(1)))
    reader = JournalReader(tmp_path)
    assert numbers_of(reader.peek(10)) == [0, 1]
    reader.commit(2)
    assert reader.checkpoint == Position(1, (tmp_path / segment_name(1)).stat().st_size)


def test_torn_line_in_the_newest_segment_is_waited_for(tmp_path):
    whole = encode(record(1))
    write_segment(tmp_path, 1, encode(record(0)) + whole[:10])  # a write in progress
    reader = JournalReader(tmp_path)
    assert numbers_of(reader.peek(10)) == [0]
    assert numbers_of(reader.peek(10)) == [0]  # still waiting, still not returned
    with open(tmp_path / segment_name(1), "ab") as handle:  # the write completes
        handle.write(whole[10:])
    assert numbers_of(reader.peek(10)) == [0, 1]

    # Torn again; once the server stopped (all_final), the torn part is never returned as a record.
    with open(tmp_path / segment_name(1), "ab") as handle:
        handle.write(encode(record(2))[:5])
    reader.all_final = True
    assert numbers_of(reader.peek(10)) == [0, 1]
    reader.commit(2)
    assert reader.checkpoint == Position(1, len(encode(record(0))) + len(whole))
    # The next server start opens a later segment: the torn tail is then dropped with its segment.
    reader.all_final = False
    write_segment(tmp_path, 2, encode(record(3)))
    assert numbers_of(reader.peek(10)) == [3]


def test_a_missing_checkpoint_segment_is_skipped(tmp_path):
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps({"segment": 2, "offset": 40}))
    write_segment(tmp_path, 3, encode(record(3)))
    write_segment(tmp_path, 5, encode(record(5)) + encode(record(6)))
    reader = JournalReader(tmp_path)
    assert reader.checkpoint == Position(2, 40)
    assert numbers_of(reader.peek(10)) == [3, 5, 6]
    reader.commit(2)
    assert reader.checkpoint == Position(5, len(encode(record(5))))
    assert segment_numbers(tmp_path) == [5]


def test_last_segment_keeps_the_reader_off_a_newer_servers_segments(tmp_path):
    """An orphaned worker reads only its own server's segments, even once it treats them all as final."""
    write_segment(tmp_path, 1, encode(record(0)) + encode(record(1)))
    write_segment(tmp_path, 2, encode(record(2)) + encode(record(3))[:8])  # its server died mid-write
    write_segment(tmp_path, 3, encode(record(4)))  # the next server's segment
    reader = JournalReader(tmp_path)
    reader.last_segment = 2
    assert numbers_of(reader.peek(10)) == [0, 1, 2]  # segment 2 is not final yet: its tail is waited for
    reader.all_final = True
    assert numbers_of(reader.peek(10)) == [0, 1, 2]  # final, but nothing past segment 2
    reader.commit(3)
    assert reader.checkpoint == Position(2, len(encode(record(2))))
    # The next server's worker (no limit, or its own newest segment) drops the torn tail and goes on.
    again = JournalReader(tmp_path)
    again.last_segment = 3
    assert numbers_of(again.peek(10)) == [4]


def test_count_before_counts_only_records_after_the_checkpoint_in_older_segments(tmp_path):
    journal = appended(tmp_path, 10)  # segments 1-3 hold 3 records each, segment 4 the tenth
    reader = JournalReader(tmp_path)
    assert reader.count_before(1) == 0
    assert reader.count_before(2) == 3
    assert reader.count_before(4) == 9
    assert reader.count_before(99) == 10

    reader.peek(100)
    reader.commit(2)  # one record left in segment 1
    assert reader.count_before(2) == 1
    assert reader.count_before(4) == 7
    assert JournalReader(tmp_path).count_before(4) == 7  # from the checkpoint file too

    reader.commit(3)  # into segment 2: segment 1 deleted
    assert reader.count_before(2) == 0
    assert reader.count_before(4) == 4
    journal.close()


def test_count_before_ignores_a_torn_tail(tmp_path):
    write_segment(tmp_path, 1, encode(record(0)) + encode(record(1))[:9])
    write_segment(tmp_path, 2, encode(record(2)))
    assert JournalReader(tmp_path).count_before(2) == 1


def test_rotate_opens_the_next_segment_and_resets_appended(tmp_path):
    journal = JournalAppender(tmp_path)  # the default segment size: no rotation by size here
    first = journal.open()
    for n in range(3):
        journal.append(record(n))
    assert journal.appended == 3
    assert journal.rotate() == first + 1
    assert journal.segment == first + 1
    assert journal.appended == 0
    journal.append(record(3))
    assert journal.appended == 1
    journal.close()
    assert (tmp_path / segment_name(first + 1)).read_bytes() == encode(record(3))
    reader = JournalReader(tmp_path)
    assert numbers_of(reader.peek(10)) == [0, 1, 2, 3]
    assert reader.count_before(first + 1) == 3


def test_a_journaled_record_is_found_by_its_prediction_id_in_any_journal(tmp_path):
    first, second = tmp_path / "journal", tmp_path / "journal" / "p1"
    appended(first, 7).close()  # records 0-6 over three segments
    appended(second, 3, start=100).close()
    journals = [first, second, tmp_path / "missing"]  # a journal folder not made yet is skipped
    assert find_record(journals, f"{5:032x}") == record(5)
    assert find_record(journals, f"{101:032x}") == record(101)
    assert find_record(journals, f"{9:032x}") is None
    # An id that only appears inside another record's value is not a match.
    appended(second, 0).append({"prediction_id": f"{200:032x}", "n": 200, "pad": f"{300:032x}"})
    assert find_record(journals, f"{300:032x}") is None
    # A torn last line (never acknowledged) is not found; the segment's complete lines still are.
    write_segment(first, 90, encode(record(40)) + encode(record(41))[:30])
    assert find_record(journals, f"{41:032x}") is None
    assert find_record(journals, f"{40:032x}") == record(40)
