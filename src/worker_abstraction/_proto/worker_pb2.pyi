import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_ACTIVE: _ClassVar[WorkerState]
    WORKER_STATE_SUSPECT: _ClassVar[WorkerState]
    WORKER_STATE_EVICTED: _ClassVar[WorkerState]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNKNOWN: _ClassVar[TaskStatus]
    TASK_STATUS_PENDING: _ClassVar[TaskStatus]
    TASK_STATUS_RUNNING: _ClassVar[TaskStatus]
    TASK_STATUS_COMPLETED: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELED: _ClassVar[TaskStatus]
    TASK_STATUS_INPUT_REQUIRED: _ClassVar[TaskStatus]
    TASK_STATUS_APPROVAL_REQUIRED: _ClassVar[TaskStatus]

class FailureOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_ORIGIN_UNSPECIFIED: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_HANDLER: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_TIMEOUT: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_INFRASTRUCTURE: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_CANCELED: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_REJECTED: _ClassVar[FailureOrigin]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    REJECT_REASON_INVALID_TASK: _ClassVar[RejectReason]
    REJECT_REASON_RESOURCE_EXHAUSTED: _ClassVar[RejectReason]
    REJECT_REASON_SHUTTING_DOWN: _ClassVar[RejectReason]

class WorkerEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_EVENT_TYPE_UNSPECIFIED: _ClassVar[WorkerEventType]
    WORKER_EVENT_TYPE_JOINED: _ClassVar[WorkerEventType]
    WORKER_EVENT_TYPE_UPDATED: _ClassVar[WorkerEventType]
    WORKER_EVENT_TYPE_LEFT: _ClassVar[WorkerEventType]
    WORKER_EVENT_TYPE_SYNCED: _ClassVar[WorkerEventType]
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_ACTIVE: WorkerState
WORKER_STATE_SUSPECT: WorkerState
WORKER_STATE_EVICTED: WorkerState
TASK_STATUS_UNKNOWN: TaskStatus
TASK_STATUS_PENDING: TaskStatus
TASK_STATUS_RUNNING: TaskStatus
TASK_STATUS_COMPLETED: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_CANCELED: TaskStatus
TASK_STATUS_INPUT_REQUIRED: TaskStatus
TASK_STATUS_APPROVAL_REQUIRED: TaskStatus
FAILURE_ORIGIN_UNSPECIFIED: FailureOrigin
FAILURE_ORIGIN_HANDLER: FailureOrigin
FAILURE_ORIGIN_TIMEOUT: FailureOrigin
FAILURE_ORIGIN_INFRASTRUCTURE: FailureOrigin
FAILURE_ORIGIN_CANCELED: FailureOrigin
FAILURE_ORIGIN_REJECTED: FailureOrigin
REJECT_REASON_UNSPECIFIED: RejectReason
REJECT_REASON_INVALID_TASK: RejectReason
REJECT_REASON_RESOURCE_EXHAUSTED: RejectReason
REJECT_REASON_SHUTTING_DOWN: RejectReason
WORKER_EVENT_TYPE_UNSPECIFIED: WorkerEventType
WORKER_EVENT_TYPE_JOINED: WorkerEventType
WORKER_EVENT_TYPE_UPDATED: WorkerEventType
WORKER_EVENT_TYPE_LEFT: WorkerEventType
WORKER_EVENT_TYPE_SYNCED: WorkerEventType

class ToolParameter(_message.Message):
    __slots__ = ("name", "type", "description", "required", "json_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    required: bool
    json_schema: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., json_schema: _Optional[str] = ...) -> None: ...

class ToolCapability(_message.Message):
    __slots__ = ("name", "description", "parameters", "max_concurrent_tasks", "required_tags", "version", "output_schema_json", "deprecated", "stateless")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_TAGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    STATELESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _containers.RepeatedCompositeFieldContainer[ToolParameter]
    max_concurrent_tasks: int
    required_tags: _containers.RepeatedScalarFieldContainer[str]
    version: str
    output_schema_json: str
    deprecated: str
    stateless: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ToolParameter, _Mapping]]] = ..., max_concurrent_tasks: _Optional[int] = ..., required_tags: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., output_schema_json: _Optional[str] = ..., deprecated: _Optional[str] = ..., stateless: _Optional[bool] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "name", "version", "address", "tags", "last_heartbeat", "capabilities", "current_load", "max_concurrent_tasks", "load_report", "state", "state_reason")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOAD_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    LOAD_REPORT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    version: str
    address: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    last_heartbeat: _timestamp_pb2.Timestamp
    capabilities: _containers.RepeatedCompositeFieldContainer[ToolCapability]
    current_load: int
    max_concurrent_tasks: int
    load_report: LoadReport
    state: WorkerState
    state_reason: str
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., address: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., capabilities: _Optional[_Iterable[_Union[ToolCapability, _Mapping]]] = ..., current_load: _Optional[int] = ..., max_concurrent_tasks: _Optional[int] = ..., load_report: _Optional[_Union[LoadReport, _Mapping]] = ..., state: _Optional[_Union[WorkerState, str]] = ..., state_reason: _Optional[str] = ...) -> None: ...

class LoadReport(_message.Message):
    __slots__ = ("free_slots", "queued", "cpu_utilization", "mem_utilization", "utilization")
    class UtilizationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    CPU_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    MEM_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    free_slots: int
    queued: int
    cpu_utilization: float
    mem_utilization: float
    utilization: _containers.ScalarMap[str, float]
    def __init__(self, free_slots: _Optional[int] = ..., queued: _Optional[int] = ..., cpu_utilization: _Optional[float] = ..., mem_utilization: _Optional[float] = ..., utilization: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TaskParameter(_message.Message):
    __slots__ = ("key", "value_json")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    key: str
    value_json: str
    def __init__(self, key: _Optional[str] = ..., value_json: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "worker_id", "capability_name", "parameters", "timeout_seconds", "created_at", "metadata", "priority", "fairness_key", "required_tags", "preferred_tags", "attempt", "trace_context", "session_key", "session_moved")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    FAIRNESS_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_TAGS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_TAGS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_MOVED_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    capability_name: str
    parameters: _containers.RepeatedCompositeFieldContainer[TaskParameter]
    timeout_seconds: int
    created_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    priority: int
    fairness_key: str
    required_tags: _containers.RepeatedScalarFieldContainer[str]
    preferred_tags: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    trace_context: _containers.ScalarMap[str, str]
    session_key: str
    session_moved: bool
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., capability_name: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[TaskParameter, _Mapping]]] = ..., timeout_seconds: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ..., fairness_key: _Optional[str] = ..., required_tags: _Optional[_Iterable[str]] = ..., preferred_tags: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., session_key: _Optional[str] = ..., session_moved: _Optional[bool] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("task_id", "status", "output_json", "error_message", "completed_at", "metadata", "sequence", "progress", "progress_message", "worker_id", "attempt", "failure", "chunk", "input_request", "input_answer", "approval")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    INPUT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    INPUT_ANSWER_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: TaskStatus
    output_json: str
    error_message: str
    completed_at: _timestamp_pb2.Timestamp
    metadata: _containers.ScalarMap[str, str]
    sequence: int
    progress: float
    progress_message: str
    worker_id: str
    attempt: int
    failure: TaskFailure
    chunk: OutputChunk
    input_request: InputRequest
    input_answer: InputAnswer
    approval: Approval
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., output_json: _Optional[str] = ..., error_message: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., sequence: _Optional[int] = ..., progress: _Optional[float] = ..., progress_message: _Optional[str] = ..., worker_id: _Optional[str] = ..., attempt: _Optional[int] = ..., failure: _Optional[_Union[TaskFailure, _Mapping]] = ..., chunk: _Optional[_Union[OutputChunk, _Mapping]] = ..., input_request: _Optional[_Union[InputRequest, _Mapping]] = ..., input_answer: _Optional[_Union[InputAnswer, _Mapping]] = ..., approval: _Optional[_Union[Approval, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("index", "text", "data_json", "last")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    data_json: str
    last: bool
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., data_json: _Optional[str] = ..., last: _Optional[bool] = ...) -> None: ...

class InputRequest(_message.Message):
    __slots__ = ("request_id", "prompt", "schema_json", "deadline")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    prompt: str
    schema_json: str
    deadline: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., prompt: _Optional[str] = ..., schema_json: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InputAnswer(_message.Message):
    __slots__ = ("request_id", "value_json", "answered_by", "answered_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    value_json: str
    answered_by: str
    answered_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., value_json: _Optional[str] = ..., answered_by: _Optional[str] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approved", "decided_by", "reason", "decided_at")
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    approved: bool
    decided_by: str
    reason: str
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, approved: _Optional[bool] = ..., decided_by: _Optional[str] = ..., reason: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InputExchange(_message.Message):
    __slots__ = ("request", "answer", "asked_at", "attempt")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ASKED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    request: InputRequest
    answer: InputAnswer
    asked_at: _timestamp_pb2.Timestamp
    attempt: int
    def __init__(self, request: _Optional[_Union[InputRequest, _Mapping]] = ..., answer: _Optional[_Union[InputAnswer, _Mapping]] = ..., asked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ...) -> None: ...

class TaskFailure(_message.Message):
    __slots__ = ("type", "message", "retryable", "origin", "traceback")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    type: str
    message: str
    retryable: bool
    origin: FailureOrigin
    traceback: str
    def __init__(self, type: _Optional[str] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., origin: _Optional[_Union[FailureOrigin, str]] = ..., traceback: _Optional[str] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_info",)
    WORKER_INFO_FIELD_NUMBER: _ClassVar[int]
    worker_info: WorkerInfo
    def __init__(self, worker_info: _Optional[_Union[WorkerInfo, _Mapping]] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("success", "message", "worker_id", "heartbeat_interval_seconds")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    worker_id: str
    heartbeat_interval_seconds: float
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., worker_id: _Optional[str] = ..., heartbeat_interval_seconds: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "current_load", "load_report")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_LOAD_FIELD_NUMBER: _ClassVar[int]
    LOAD_REPORT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    current_load: int
    load_report: LoadReport
    def __init__(self, worker_id: _Optional[str] = ..., current_load: _Optional[int] = ..., load_report: _Optional[_Union[LoadReport, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("success", "message", "must_register")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MUST_REGISTER_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    must_register: bool
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ..., must_register: _Optional[bool] = ...) -> None: ...

class ExecuteTaskRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class ExecuteTaskResponse(_message.Message):
    __slots__ = ("task_id", "accepted", "message", "reject_reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    accepted: bool
    message: str
    reject_reason: RejectReason
    def __init__(self, task_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., message: _Optional[str] = ..., reject_reason: _Optional[_Union[RejectReason, str]] = ...) -> None: ...

class GetTaskStatusRequest(_message.Message):
    __slots__ = ("task_id", "after_sequence", "from_start")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_START_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    after_sequence: int
    from_start: bool
    def __init__(self, task_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., from_start: _Optional[bool] = ...) -> None: ...

class StreamTaskStatusResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: TaskResult
    def __init__(self, result: _Optional[_Union[TaskResult, _Mapping]] = ...) -> None: ...

class ProvideInputRequest(_message.Message):
    __slots__ = ("task_id", "request_id", "value_json", "answered_by", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    request_id: str
    value_json: str
    answered_by: str
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., request_id: _Optional[str] = ..., value_json: _Optional[str] = ..., answered_by: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class ProvideInputResponse(_message.Message):
    __slots__ = ("task_id", "request_id", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    request_id: str
    status: TaskStatus
    def __init__(self, task_id: _Optional[str] = ..., request_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("task_id", "canceled", "status", "message")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    canceled: bool
    status: TaskStatus
    message: str
    def __init__(self, task_id: _Optional[str] = ..., canceled: _Optional[bool] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class GetWorkerByIdRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class TaskChannelRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class TaskChannelResponse(_message.Message):
    __slots__ = ("acks", "updates")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[ExecuteTaskResponse]
    updates: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, acks: _Optional[_Iterable[_Union[ExecuteTaskResponse, _Mapping]]] = ..., updates: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class DeregisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DeregisterWorkerResponse(_message.Message):
    __slots__ = ("success", "message")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    success: bool
    message: str
    def __init__(self, success: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class WatchWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WorkerEvent(_message.Message):
    __slots__ = ("type", "worker", "reason")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    type: WorkerEventType
    worker: WorkerInfo
    reason: str
    def __init__(self, type: _Optional[_Union[WorkerEventType, str]] = ..., worker: _Optional[_Union[WorkerInfo, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class VersionSplit(_message.Message):
    __slots__ = ("capability", "weights")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    capability: str
    weights: _containers.ScalarMap[str, int]
    def __init__(self, capability: _Optional[str] = ..., weights: _Optional[_Mapping[str, int]] = ...) -> None: ...

class VersionSplits(_message.Message):
    __slots__ = ("splits",)
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    splits: _containers.RepeatedCompositeFieldContainer[VersionSplit]
    def __init__(self, splits: _Optional[_Iterable[_Union[VersionSplit, _Mapping]]] = ...) -> None: ...

class ClaimRequest(_message.Message):
    __slots__ = ("task_id", "release", "claimant")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    CLAIMANT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    release: bool
    claimant: str
    def __init__(self, task_id: _Optional[str] = ..., release: _Optional[bool] = ..., claimant: _Optional[str] = ...) -> None: ...

class ApprovalRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ApprovalResponse(_message.Message):
    __slots__ = ("task_id", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    status: TaskStatus
    def __init__(self, task_id: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("submits", "watches", "unwatch")
    SUBMITS_FIELD_NUMBER: _ClassVar[int]
    WATCHES_FIELD_NUMBER: _ClassVar[int]
    UNWATCH_FIELD_NUMBER: _ClassVar[int]
    submits: _containers.RepeatedCompositeFieldContainer[SessionSubmit]
    watches: _containers.RepeatedCompositeFieldContainer[WatchTaskRequest]
    unwatch: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submits: _Optional[_Iterable[_Union[SessionSubmit, _Mapping]]] = ..., watches: _Optional[_Iterable[_Union[WatchTaskRequest, _Mapping]]] = ..., unwatch: _Optional[_Iterable[str]] = ...) -> None: ...

class SessionSubmit(_message.Message):
    __slots__ = ("request_id", "submit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    submit: SubmitTaskRequest
    def __init__(self, request_id: _Optional[int] = ..., submit: _Optional[_Union[SubmitTaskRequest, _Mapping]] = ...) -> None: ...

class SessionResponse(_message.Message):
    __slots__ = ("acks", "updates")
    ACKS_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[SessionAck]
    updates: _containers.RepeatedCompositeFieldContainer[TaskResult]
    def __init__(self, acks: _Optional[_Iterable[_Union[SessionAck, _Mapping]]] = ..., updates: _Optional[_Iterable[_Union[TaskResult, _Mapping]]] = ...) -> None: ...

class SessionAck(_message.Message):
    __slots__ = ("request_id", "response", "error", "task_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: int
    response: SubmitTaskResponse
    error: ErrorStatus
    task_id: str
    def __init__(self, request_id: _Optional[int] = ..., response: _Optional[_Union[SubmitTaskResponse, _Mapping]] = ..., error: _Optional[_Union[ErrorStatus, _Mapping]] = ..., task_id: _Optional[str] = ...) -> None: ...

class ErrorStatus(_message.Message):
    __slots__ = ("code", "details", "error_type", "fields_json")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    code: int
    details: str
    error_type: str
    fields_json: str
    def __init__(self, code: _Optional[int] = ..., details: _Optional[str] = ..., error_type: _Optional[str] = ..., fields_json: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class TaskRecord(_message.Message):
    __slots__ = ("task_id", "capability", "status", "parameters", "last_update", "attempts", "submitted_at", "dead_lettered", "cancel_reason", "idempotency_key", "owner", "not_before", "expires_at", "inputs", "approval", "approval_required", "claimed_by")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTERED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_BY_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    capability: str
    status: TaskStatus
    parameters: _containers.RepeatedCompositeFieldContainer[TaskParameter]
    last_update: TaskResult
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptRecord]
    submitted_at: _timestamp_pb2.Timestamp
    dead_lettered: bool
    cancel_reason: str
    idempotency_key: str
    owner: str
    not_before: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    inputs: _containers.RepeatedCompositeFieldContainer[InputExchange]
    approval: Approval
    approval_required: bool
    claimed_by: str
    def __init__(self, task_id: _Optional[str] = ..., capability: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., parameters: _Optional[_Iterable[_Union[TaskParameter, _Mapping]]] = ..., last_update: _Optional[_Union[TaskResult, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[AttemptRecord, _Mapping]]] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dead_lettered: _Optional[bool] = ..., cancel_reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., owner: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[InputExchange, _Mapping]]] = ..., approval: _Optional[_Union[Approval, _Mapping]] = ..., approval_required: _Optional[bool] = ..., claimed_by: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("statuses", "capability", "limit", "page_token", "worker_id", "since", "until", "task_id_prefix")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[TaskStatus]
    capability: str
    limit: int
    page_token: str
    worker_id: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    task_id_prefix: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[TaskStatus, str]]] = ..., capability: _Optional[str] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ..., worker_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_id_prefix: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskRecord]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WorkerHealth(_message.Message):
    __slots__ = ("worker", "state", "state_reason", "circuit", "in_flight")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    worker: WorkerInfo
    state: WorkerState
    state_reason: str
    circuit: str
    in_flight: int
    def __init__(self, worker: _Optional[_Union[WorkerInfo, _Mapping]] = ..., state: _Optional[_Union[WorkerState, str]] = ..., state_reason: _Optional[str] = ..., circuit: _Optional[str] = ..., in_flight: _Optional[int] = ...) -> None: ...

class WorkerHealthList(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerHealth]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerHealth, _Mapping]]] = ...) -> None: ...

class RetryPolicy(_message.Message):
    __slots__ = ("max_attempts", "initial_backoff_seconds", "backoff_multiplier", "max_backoff_seconds", "jitter", "retry_task_errors", "non_retryable_errors")
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_BACKOFF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JITTER_FIELD_NUMBER: _ClassVar[int]
    RETRY_TASK_ERRORS_FIELD_NUMBER: _ClassVar[int]
    NON_RETRYABLE_ERRORS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    initial_backoff_seconds: float
    backoff_multiplier: float
    max_backoff_seconds: float
    jitter: float
    retry_task_errors: bool
    non_retryable_errors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, max_attempts: _Optional[int] = ..., initial_backoff_seconds: _Optional[float] = ..., backoff_multiplier: _Optional[float] = ..., max_backoff_seconds: _Optional[float] = ..., jitter: _Optional[float] = ..., retry_task_errors: _Optional[bool] = ..., non_retryable_errors: _Optional[_Iterable[str]] = ...) -> None: ...

class AttemptRecord(_message.Message):
    __slots__ = ("number", "worker_id", "started_at", "ended_at", "status", "error_message")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    number: int
    worker_id: str
    started_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    status: TaskStatus
    error_message: str
    def __init__(self, number: _Optional[int] = ..., worker_id: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., error_message: _Optional[str] = ...) -> None: ...

class DeadLetterEntry(_message.Message):
    __slots__ = ("task_id", "capability", "parameters", "attempts", "error_message", "submission")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    capability: str
    parameters: _containers.RepeatedCompositeFieldContainer[TaskParameter]
    attempts: _containers.RepeatedCompositeFieldContainer[AttemptRecord]
    error_message: str
    submission: SubmitTaskRequest
    def __init__(self, task_id: _Optional[str] = ..., capability: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[TaskParameter, _Mapping]]] = ..., attempts: _Optional[_Iterable[_Union[AttemptRecord, _Mapping]]] = ..., error_message: _Optional[str] = ..., submission: _Optional[_Union[SubmitTaskRequest, _Mapping]] = ...) -> None: ...

class DeadLetters(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DeadLetterEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[DeadLetterEntry, _Mapping]]] = ...) -> None: ...

class DeadLetterRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class SubmitTaskRequest(_message.Message):
    __slots__ = ("task", "idempotency_key", "retry_policy", "queue_timeout_seconds", "exact_timeout_seconds", "owner", "not_before", "delay_seconds", "require_approval", "session_key", "version", "session_hard", "session_wait_seconds")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    EXACT_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_HARD_FIELD_NUMBER: _ClassVar[int]
    SESSION_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    task: Task
    idempotency_key: str
    retry_policy: RetryPolicy
    queue_timeout_seconds: float
    exact_timeout_seconds: float
    owner: str
    not_before: _timestamp_pb2.Timestamp
    delay_seconds: float
    require_approval: bool
    session_key: str
    version: str
    session_hard: bool
    session_wait_seconds: float
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., retry_policy: _Optional[_Union[RetryPolicy, _Mapping]] = ..., queue_timeout_seconds: _Optional[float] = ..., exact_timeout_seconds: _Optional[float] = ..., owner: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ..., require_approval: _Optional[bool] = ..., session_key: _Optional[str] = ..., version: _Optional[str] = ..., session_hard: _Optional[bool] = ..., session_wait_seconds: _Optional[float] = ...) -> None: ...

class SubmitTaskResponse(_message.Message):
    __slots__ = ("task_id", "worker_id", "worker_address", "duplicate")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    worker_address: str
    duplicate: bool
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., worker_address: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class WatchTaskRequest(_message.Message):
    __slots__ = ("task_id", "after_sequence")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    after_sequence: int
    def __init__(self, task_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class QueueDepth(_message.Message):
    __slots__ = ("capability", "priority", "waiting")
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    capability: str
    priority: int
    waiting: int
    def __init__(self, capability: _Optional[str] = ..., priority: _Optional[int] = ..., waiting: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("depths", "total_waiting", "limited")
    DEPTHS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WAITING_FIELD_NUMBER: _ClassVar[int]
    LIMITED_FIELD_NUMBER: _ClassVar[int]
    depths: _containers.RepeatedCompositeFieldContainer[QueueDepth]
    total_waiting: int
    limited: _containers.RepeatedCompositeFieldContainer[LimitedQueue]
    def __init__(self, depths: _Optional[_Iterable[_Union[QueueDepth, _Mapping]]] = ..., total_waiting: _Optional[int] = ..., limited: _Optional[_Iterable[_Union[LimitedQueue, _Mapping]]] = ...) -> None: ...

class LimitedQueue(_message.Message):
    __slots__ = ("capability", "waiting", "starts_in_seconds", "limit")
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    STARTS_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    capability: str
    waiting: int
    starts_in_seconds: float
    limit: str
    def __init__(self, capability: _Optional[str] = ..., waiting: _Optional[int] = ..., starts_in_seconds: _Optional[float] = ..., limit: _Optional[str] = ...) -> None: ...

class RunWorkflowRequest(_message.Message):
    __slots__ = ("definition_json", "workflow_id", "idempotency_key", "priority", "trace_context", "not_before", "delay_seconds")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    definition_json: str
    workflow_id: str
    idempotency_key: str
    priority: int
    trace_context: _containers.ScalarMap[str, str]
    not_before: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, definition_json: _Optional[str] = ..., workflow_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., priority: _Optional[int] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class RunWorkflowResponse(_message.Message):
    __slots__ = ("workflow_id", "duplicate")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    duplicate: bool
    def __init__(self, workflow_id: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id",)
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ...) -> None: ...

class WorkflowStep(_message.Message):
    __slots__ = ("name", "capability", "status", "output_json", "error", "tasks", "kept")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    name: str
    capability: str
    status: str
    output_json: str
    error: str
    tasks: int
    kept: bool
    def __init__(self, name: _Optional[str] = ..., capability: _Optional[str] = ..., status: _Optional[str] = ..., output_json: _Optional[str] = ..., error: _Optional[str] = ..., tasks: _Optional[int] = ..., kept: _Optional[bool] = ...) -> None: ...

class WorkflowRun(_message.Message):
    __slots__ = ("workflow_id", "name", "status", "steps", "failed_step", "error", "rerun_of", "definition_json")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    FAILED_STEP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RERUN_OF_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    name: str
    status: TaskStatus
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStep]
    failed_step: str
    error: str
    rerun_of: str
    definition_json: str
    def __init__(self, workflow_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., steps: _Optional[_Iterable[_Union[WorkflowStep, _Mapping]]] = ..., failed_step: _Optional[str] = ..., error: _Optional[str] = ..., rerun_of: _Optional[str] = ..., definition_json: _Optional[str] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("statuses", "limit", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[TaskStatus]
    limit: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[TaskStatus, str]]] = ..., limit: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows", "next_page_token")
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowRun]
    next_page_token: str
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "after_sequence")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    after_sequence: int
    def __init__(self, workflow_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WorkflowEvent(_message.Message):
    __slots__ = ("sequence", "status", "step", "run")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    status: TaskStatus
    step: WorkflowStep
    run: WorkflowRun
    def __init__(self, sequence: _Optional[int] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., step: _Optional[_Union[WorkflowStep, _Mapping]] = ..., run: _Optional[_Union[WorkflowRun, _Mapping]] = ...) -> None: ...

class CancelWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelWorkflowResponse(_message.Message):
    __slots__ = ("workflow_id", "canceled", "status", "message")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    canceled: bool
    status: TaskStatus
    message: str
    def __init__(self, workflow_id: _Optional[str] = ..., canceled: _Optional[bool] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class RerunWorkflowRequest(_message.Message):
    __slots__ = ("workflow_id", "step", "only_this_step", "new_workflow_id")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    ONLY_THIS_STEP_FIELD_NUMBER: _ClassVar[int]
    NEW_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    step: str
    only_this_step: bool
    new_workflow_id: str
    def __init__(self, workflow_id: _Optional[str] = ..., step: _Optional[str] = ..., only_this_step: _Optional[bool] = ..., new_workflow_id: _Optional[str] = ...) -> None: ...

class ScheduleRequest(_message.Message):
    __slots__ = ("schedule_json",)
    SCHEDULE_JSON_FIELD_NUMBER: _ClassVar[int]
    schedule_json: str
    def __init__(self, schedule_json: _Optional[str] = ...) -> None: ...

class ScheduleName(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResumeScheduleRequest(_message.Message):
    __slots__ = ("name", "run_now")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_NOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    run_now: bool
    def __init__(self, name: _Optional[str] = ..., run_now: _Optional[bool] = ...) -> None: ...

class ScheduleRecord(_message.Message):
    __slots__ = ("name", "schedule_json", "paused", "next_occurrence", "last_occurrence", "last_run", "fired", "skipped", "last_error", "created_at", "resumed_at", "owner")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_JSON_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    NEXT_OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_OCCURRENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    FIRED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_AT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    name: str
    schedule_json: str
    paused: bool
    next_occurrence: _timestamp_pb2.Timestamp
    last_occurrence: _timestamp_pb2.Timestamp
    last_run: str
    fired: int
    skipped: int
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    resumed_at: _timestamp_pb2.Timestamp
    owner: str
    def __init__(self, name: _Optional[str] = ..., schedule_json: _Optional[str] = ..., paused: _Optional[bool] = ..., next_occurrence: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_occurrence: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_run: _Optional[str] = ..., fired: _Optional[int] = ..., skipped: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resumed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[str] = ...) -> None: ...

class ScheduleList(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[ScheduleRecord]
    def __init__(self, schedules: _Optional[_Iterable[_Union[ScheduleRecord, _Mapping]]] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    def __init__(self, deleted: _Optional[bool] = ...) -> None: ...

class RateLimitSpec(_message.Message):
    __slots__ = ("capability", "rate", "burst", "key")
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    capability: str
    rate: str
    burst: int
    key: str
    def __init__(self, capability: _Optional[str] = ..., rate: _Optional[str] = ..., burst: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class ConcurrencyLimitSpec(_message.Message):
    __slots__ = ("capability", "max_in_flight", "key", "strategy")
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    capability: str
    max_in_flight: int
    key: str
    strategy: str
    def __init__(self, capability: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., key: _Optional[str] = ..., strategy: _Optional[str] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("rate_limits", "concurrency_limits")
    RATE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_LIMITS_FIELD_NUMBER: _ClassVar[int]
    rate_limits: _containers.RepeatedCompositeFieldContainer[RateLimitSpec]
    concurrency_limits: _containers.RepeatedCompositeFieldContainer[ConcurrencyLimitSpec]
    def __init__(self, rate_limits: _Optional[_Iterable[_Union[RateLimitSpec, _Mapping]]] = ..., concurrency_limits: _Optional[_Iterable[_Union[ConcurrencyLimitSpec, _Mapping]]] = ...) -> None: ...

class RemoveLimitsRequest(_message.Message):
    __slots__ = ("capability",)
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    capability: str
    def __init__(self, capability: _Optional[str] = ...) -> None: ...
