"""An error as a message (ErrorStatus), for answers that travel inside a stream rather than as a call's status."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from worker_abstraction import _rpc
from worker_abstraction._proto import worker_pb2 as pb
from worker_abstraction.errors import WorkerAbstractionError

_CODES = {code.value[0]: code for code in grpc.StatusCode}


def error_to_pb(error: WorkerAbstractionError) -> pb.ErrorStatus:
    code, details, kind, fields = _rpc.describe(error)
    return pb.ErrorStatus(code=code.value[0], details=details, error_type=kind, fields_json=fields)


def internal_error_to_pb(details: str) -> pb.ErrorStatus:
    return pb.ErrorStatus(code=grpc.StatusCode.INTERNAL.value[0], details=details)


def error_from_pb(
    message: pb.ErrorStatus, unavailable: Callable[[str], WorkerAbstractionError]
) -> WorkerAbstractionError:
    code = _CODES.get(message.code, grpc.StatusCode.UNKNOWN)
    return _rpc.rebuild(code, message.details, message.error_type, message.fields_json, unavailable)
