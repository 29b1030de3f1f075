"""Scenario 10's pieces on fixed numbers: a chunk's text and its check, the bare stream it is held to, its ratios
and its lines under the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc import aio

from bench import floor, report
from bench.chunks import numbered, out_of_place
from bench.config import TINY
from bench.measure import Figure, Results
from bench.scenarios import streaming
from bench.suite import FIGURE_KEYS, ROUNDS_OF, document

pytestmark = pytest.mark.timeout(20)


def test_a_chunk_carries_its_number_then_filler_and_another_place_or_size_is_named() -> None:
    assert numbered(42, 100) == "00000042" + "x" * 92
    assert numbered(7, 5) == "00000"  # (cut to its size)
    assert out_of_place(42, numbered(42, 100), 100) is None
    assert out_of_place(43, numbered(42, 100), 100) == "chunk 43 was '00000042xxxxxxxx' (100 characters)"
    assert out_of_place(42, numbered(42, 100)[:99], 100) is not None


async def test_the_floor_streams_count_numbered_messages_of_the_size_asked() -> None:
    server = aio.server()
    server.add_generic_rpc_handlers(floor.handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_stream(floor.CHUNKS, None, None)
            assert await floor.chunk_stream(method, 300, 100) > 0
            got = [message async for message in method(b"3 10")]
            assert got == [b"00000000xx", b"00000001xx", b"00000002xx"]
    finally:
        await server.stop(None)


def _results() -> Results:
    results = Results()
    figures = results.figures
    figures["stream_chunks_per_s"] = Figure((10_000.0, 12_000.0, 9_000.0))
    figures["stream_floor_chunks_per_s"] = Figure((20_000.0, 20_000.0, 10_000.0))
    figures["input_resume_p50_us"] = Figure((3_000.0, 2_000.0, 4_000.0))
    figures["input_noop_p50_us"] = Figure((1_000.0, 1_000.0, 1_000.0))
    figures["stream_rss_mb_before"] = Figure((71.0, 70.0, 69.0))  # (one per daemon)
    figures["stream_rss_mb_growth_alone"] = Figure((8.0, 8.5, 9.0))
    for name, rss in (("slow_watchers", 77.0), ("live_readers", 140.0), ("slow_readers", 700.0)):
        figures[f"stream_rss_mb_{name}"] = Figure((rss,))
    daemons = {
        "slow_readers": {
            "idle_rss_mb": 61.7,
            "alone": {"rss_mb_growth": 8.0, "rss_mb_after": 70.0},
            "with_readers": {"rss_mb_growth": 430.0, "rss_mb_after": 700.5},
        }
    }
    results.extras["stream_slow"] = {"chunks_per_task": 10_010, "chunk_bytes": 100, "readers": 100, "daemons": daemons}
    results.extras["stream_shapes"] = {"chunks": 10_000, "chunk_bytes": 100, "readers": 100, "input_tasks": 500}
    return results


def test_the_ratios_pair_each_round_with_its_floor_and_the_rss_is_held_to_the_same_moment_with_no_reader(
    tmp_path: Path,
) -> None:
    doc = document(TINY, _results(), {}, 1.0, tmp_path)

    assert doc["stream_chunk_ratio"] == pytest.approx(0.6)  # the median of 0.5, 0.6 and 0.9
    assert doc["input_resume_ratio"] == pytest.approx(3.0)  # the median of 3, 2 and 4
    assert doc["stream_rss_ratio_slow_readers"] == pytest.approx(10.0)  # to the median of the daemons' befores
    assert doc["stream_rss_ratio_slow_watchers"] == pytest.approx(1.1)


def test_every_figure_of_scenario_10_is_a_figure_of_the_suite_and_the_rss_measured_once() -> None:
    assert set(streaming.FIGURE_KEYS) <= set(FIGURE_KEYS)
    assert {key: ROUNDS_OF.get(key) for key in streaming.RSS_KEYS} == dict.fromkeys(streaming.RSS_KEYS, 1)
    assert ROUNDS_OF.get("stream_chunks_per_s") is None and ROUNDS_OF.get("stream_rss_mb_before") is None
    assert ROUNDS_OF.get("stream_rss_mb_growth_alone") is None  # (one per daemon: 3)


def test_the_table_gives_the_rows_with_their_sizes_and_the_rss_growth_line(tmp_path: Path) -> None:
    doc = document(TINY, _results(), {}, 1.0, tmp_path)

    table = report.table(doc)

    assert "(10a) 10,000 chunks of 100 B from one handler, in order" in table
    assert "0.60× bare stream" in table and "3.00× no-op p50" in table
    assert "(10b) after its stream, 100 RemoteOrchestrator readers stalled" in table and "10.0× before" in table
    assert report.stream_lines(doc) == [
        "(10b) daemon RSS growth while a task streamed 10,010 chunks of 100 B, MiB, with no reader but the caller /"
        " with 100 readers (then, the task and the readers gone):",
        "  slow readers: +8.0 / +430.0 (then 700.5); idle 61.7",
    ]
