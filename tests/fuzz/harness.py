"""Sends one fuzz case to its RPC over a generic channel (identity serializers) and applies every oracle."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError, Message

from tests.fuzz import oracle
from tests.fuzz.cluster import Cluster
from tests.fuzz.oracle import Finding, Findings, submit_problem, task_problem
from tests.fuzz.rpcs import Rpc
from tests.fuzz.strategies import Case, Known
from worker_abstraction._proto import worker_pb2 as pb

UNARY_DEADLINE_SECONDS = 5.0
OPEN_STREAM_SECONDS = 3.0
# The timeout oracle of streams: a stream answers its caller's messages (a message with content, or its status)
# within this many seconds of the last one, while the caller keeps its side open: never silence.
ANSWER_SECONDS = float(os.environ.get("WA_FUZZ_ANSWER_SECONDS", "2"))
MAX_STREAM_MESSAGES = 10_000
CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 * 2**20), ("grpc.max_receive_message_length", 64 * 2**20)]
TERMINAL = {pb.TASK_STATUS_COMPLETED, pb.TASK_STATUS_FAILED, pb.TASK_STATUS_CANCELED}


_LARGEST_SENT = 256 * 2**20  # bytes of one case's messages: past the servers' 32 MiB limit, well short of GBs


@dataclass
class Outcome:
    code: grpc.StatusCode | None = None  # None: OK
    details: str = ""
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    responses: list[bytes] = field(default_factory=list)
    seconds: float = 0.0
    sent_at: float | None = None  # when the last request message went out (None: the call ended first)
    answered_at: float | None = None  # the first response with content, or the call's end

    def silence(self) -> float:
        """Seconds between the last request message and the first answer (0: answered, or never all sent)."""
        if self.sent_at is None:
            return 0.0
        return max(0.0, (self.answered_at or time.monotonic()) - self.sent_at)


def _identity(data: bytes) -> bytes:
    return data


@dataclass
class Harness:
    cluster: Cluster
    findings: Findings
    known: Known = field(default_factory=Known)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, address: str) -> grpc.Channel:
        if address not in self._channels:
            self._channels[address] = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        return self._channels[address]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    # ---- sending ------------------------------------------------------------------------------------------

    def send(self, rpc: Rpc, messages: list[bytes], *, expected_tasks: int = 0) -> Outcome:
        channel = self.channel(self.cluster.address(rpc.service))
        kwargs = {"request_serializer": _identity, "response_deserializer": _identity}
        outcome = Outcome()
        started = time.monotonic()
        answered = threading.Event()

        def kept_open() -> Iterator[bytes]:
            """The messages, then the caller's side kept open until the first answer (at most ANSWER_SECONDS),
            as a real caller keeps it: a stream that waits for the caller to hang up before it answers is found."""
            yield from messages
            outcome.sent_at = time.monotonic()
            answered.wait(ANSWER_SECONDS)

        try:
            if not rpc.client_streaming and not rpc.server_streaming:
                response, call = channel.unary_unary(rpc.path, **kwargs).with_call(
                    messages[0], timeout=UNARY_DEADLINE_SECONDS
                )
                outcome.responses.append(response)
                outcome.metadata = tuple(call.trailing_metadata() or ())
            elif rpc.client_streaming and not rpc.server_streaming:
                response, call = channel.stream_unary(rpc.path, **kwargs).with_call(
                    iter(messages), timeout=UNARY_DEADLINE_SECONDS
                )
                outcome.responses.append(response)
            else:
                timeout = OPEN_STREAM_SECONDS if rpc.open_ended else UNARY_DEADLINE_SECONDS
                if rpc.client_streaming:
                    call = channel.stream_stream(rpc.path, **kwargs)(kept_open(), timeout=timeout)
                else:
                    outcome.sent_at = started
                    call = channel.unary_stream(rpc.path, **kwargs)(messages[0], timeout=timeout)
                self._read_stream(rpc, call, outcome, expected_tasks, answered)
        except grpc.RpcError as error:
            outcome.code = error.code()
            outcome.details = error.details() or ""
            outcome.metadata = tuple(error.trailing_metadata() or ())
        finally:
            if outcome.answered_at is None:
                outcome.answered_at = time.monotonic()  # (the call's end is an answer too)
            answered.set()  # (releases the request side of a call that ended unanswered)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _read_stream(
        self, rpc: Rpc, call: Iterator[bytes], outcome: Outcome, expected_tasks: int, answered: threading.Event
    ) -> None:
        """Read a stream to its end, or (open-ended ones) until what the case waits for arrived."""
        acks, finished = 0, set()
        for raw in call:
            outcome.responses.append(raw)
            if raw and outcome.answered_at is None:  # (an empty message is a stream's "ready", not an answer)
                outcome.answered_at = time.monotonic()
                answered.set()
            if len(outcome.responses) >= MAX_STREAM_MESSAGES:
                break
            if not rpc.open_ended:
                continue
            message = rpc.response_type.FromString(raw)
            if rpc.method == "WatchWorkers":
                break
            if rpc.method in ("StreamTaskStatus", "WatchTask"):
                result = message.result if rpc.method == "StreamTaskStatus" else message  # type: ignore[attr-defined]
                if result.status in TERMINAL:
                    break
                continue
            acks += len(message.acks)  # type: ignore[attr-defined]
            finished |= {u.task_id for u in message.updates if u.status in TERMINAL}  # type: ignore[attr-defined]
            if outcome.answered_at is not None and acks >= expected_tasks and len(finished) >= min(expected_tasks, 1):
                break
        call.cancel()  # type: ignore[attr-defined]

    # ---- checking -----------------------------------------------------------------------------------------

    def check(self, rpc: Rpc, case: Case) -> None:
        self.findings.cases += 1
        if self.findings.seen(rpc.name, "hang", case.label):
            return  # the same shape already hung: another 5 s would find nothing new
        if sum(len(m) for m in case.messages) > _LARGEST_SENT:
            return  # gRPC refuses such a message at the transport; sending gigabytes only times the client
        procs = list(self.cluster.procs.values())
        logs_before = [p.log_bytes() for p in procs]
        expected = 0
        if case.built and rpc.method in ("OpenTaskChannel", "OpenSession"):
            expected = sum(len(getattr(m, "tasks", [])) + len(getattr(m, "submits", [])) for m in case.built)
        outcome = self.send(rpc, case.messages, expected_tasks=expected)
        repro = self._repro(rpc, case)

        def found(kind: str, what: str) -> None:
            self.findings.add(Finding(rpc.name, kind, what, case.label, repro))

        code = outcome.code
        if code == grpc.StatusCode.UNKNOWN:
            found("UNKNOWN status", oracle.status_outcome(code, outcome.details))
        if code == grpc.StatusCode.INTERNAL:  # (the server caught a bug of its own: a crash it survived)
            found("INTERNAL status", oracle.status_outcome(code, outcome.details))
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and (not rpc.open_ended or not outcome.responses):
            found("hang", f"DEADLINE_EXCEEDED after {outcome.seconds:.1f}s with {len(outcome.responses)} messages")
        elif rpc.server_streaming and outcome.silence() > ANSWER_SECONDS:
            found(
                "silent stream",
                f"no answer within {ANSWER_SECONDS:g}s of the last message ({oracle.status_outcome(code, '')})",
            )
        if len(outcome.details) > oracle.MAX_DETAILS_CHARS:
            found("details too long", f"{code and code.name} details of {len(outcome.details):,} chars")
        for key, value in outcome.metadata:
            if len(value) > oracle.MAX_METADATA_CHARS:
                found("metadata too long", f"{code and code.name} trailing {key!r} of {len(value):,} chars")
        self._check_responses(rpc, case, outcome, found)
        for proc, before in zip(procs, logs_before, strict=True):
            grown = proc.log_bytes() - before
            if grown > oracle.MAX_LOG_BYTES_PER_CALL:
                found("log flood", f"{proc.name} stderr grew {grown:,} bytes in one call")
        dead = self.cluster.dead()
        if dead:
            for proc in dead:
                found("crash", f"{proc.name} exited {proc.popen.returncode}; stderr tail: {proc.stderr_tail(300)!r}")
            self.close()
            self.cluster.restart()
            self.known.worker_id = self.cluster.procs["worker"].worker_id

    def _check_responses(self, rpc: Rpc, case: Case, outcome: Outcome, found: object) -> None:
        add = found  # a callable (kind, what)
        for raw in outcome.responses[:100]:
            try:
                message = rpc.response_type.FromString(raw)
            except DecodeError:
                add("bad response", "response does not parse as " + rpc.response_type.__name__)  # type: ignore[operator]
                continue
            long = oracle.text_too_long(message)
            if long:
                add("message too long", f"{'OK' if outcome.code is None else outcome.code.name}: {', '.join(long)}")  # type: ignore[operator]
            if rpc.method == "OpenSession":
                self._check_session(case, message, add)
            if rpc.method == "OpenTaskChannel":
                self._check_channel(case, message, add)
        if outcome.code is not None or case.must_refuse is None or rpc.server_streaming:
            return
        if not outcome.responses:
            return
        response = rpc.response_type.FromString(outcome.responses[0])
        refused = getattr(response, "success", True) is False or getattr(response, "accepted", True) is False
        if not refused:
            add("accepted invalid input", f"OK ({case.must_refuse})")  # type: ignore[operator]

    def _check_session(self, case: Case, message: Message, add: object) -> None:
        sent = [s for m in case.built or [] for s in m.submits]  # type: ignore[attr-defined]
        ids = [s.request_id for s in sent]
        # An id sent twice makes its acks ambiguous (the daemon answers each): judge only ids sent once.
        submits = {s.request_id: s.submit for s in sent if ids.count(s.request_id) == 1}
        broken = {
            grpc.StatusCode.UNKNOWN.value[0]: "UNKNOWN status",
            grpc.StatusCode.INTERNAL.value[0]: "INTERNAL status",
        }
        for ack in message.acks:  # type: ignore[attr-defined]
            if ack.HasField("error") and ack.error.code in broken:
                kind = broken[ack.error.code]
                add(kind, f"session ack error code {ack.error.code} {ack.error.details[:120]!r}")  # type: ignore[operator]
            submit = submits.get(ack.request_id)
            problem = submit_problem(submit) if submit is not None else None
            if ack.HasField("response") and problem:
                add("accepted invalid input", f"session ack accepted ({problem})")  # type: ignore[operator]

    def _check_channel(self, case: Case, message: Message, add: object) -> None:
        sent = [t for m in case.built or [] for t in m.tasks]  # type: ignore[attr-defined]
        ids = [t.task_id for t in sent]
        # As for sessions: a task id sent twice (a valid task, then an invalid one under the same id) makes its
        # acks ambiguous, since the worker answers each; judge only ids sent once.
        tasks = {t.task_id: t for t in sent if ids.count(t.task_id) == 1}
        for ack in message.acks:  # type: ignore[attr-defined]
            task = tasks.get(ack.task_id)
            problem = task_problem(task) if task is not None else None
            if ack.accepted and problem:
                add("accepted invalid input", f"channel ack accepted ({problem})")  # type: ignore[operator]

    def _repro(self, rpc: Rpc, case: Case) -> str:
        data = b"".join(case.messages)
        if len(data) <= 200:
            return f"{rpc.path} <- bytes.fromhex({data.hex()!r})"
        return f"{rpc.path} <- {case.label} ({len(data):,} bytes)"
