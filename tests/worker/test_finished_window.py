"""A worker keeps finished tasks for late readers within a count and a byte bound: large outputs cannot pile up."""

from __future__ import annotations

from worker_abstraction.worker import tasks
from worker_abstraction.worker.tasks import TaskRecord, TaskTable


def _finished(table: TaskTable, task_id: str, output_bytes: int) -> TaskRecord:
    record = TaskRecord(task_id, "echo", "w1")
    table.add(record)
    record.running()
    record.completed('"' + "x" * output_bytes + '"')
    table.finish(record)
    return record


async def test_finished_outputs_are_kept_up_to_the_byte_bound_oldest_first() -> None:
    table = TaskTable(keep_finished=10_000)
    size = tasks.KEEP_FINISHED_BYTES // 8
    for number in range(20):
        _finished(table, f"t{number}", size)
    kept = [number for number in range(20) if f"t{number}" in table]
    assert kept == list(range(20 - len(kept), 20))  # the newest, oldest dropped first
    assert 6 <= len(kept) <= 8


async def test_a_single_output_over_the_bound_is_still_kept_until_the_next_one() -> None:
    table = TaskTable()
    _finished(table, "huge", tasks.KEEP_FINISHED_BYTES + 1)
    assert "huge" in table
    _finished(table, "next", 10)
    assert "huge" not in table and "next" in table


async def test_small_outputs_are_kept_up_to_the_count_bound() -> None:
    table = TaskTable(keep_finished=5)
    for number in range(8):
        _finished(table, f"t{number}", 10)
    assert [number for number in range(8) if f"t{number}" in table] == [3, 4, 5, 6, 7]
