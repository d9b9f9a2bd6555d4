"""Typed gRPC stubs of ``QueueService``, ``ScheduleService``, ``LimitService``,
``WorkflowService``, ``OpsService`` (its ``Revoke`` and ``DescribeTask``) and
``WorkerService``, built from the generated descriptors (so a method renamed in the .proto
fails at import, not at call time).

Only the messages are generated (``flotilla.v1``); grpcio's generated service glue is untyped,
and these few lines are all the SDK needs of it.
"""

from __future__ import annotations

import os
from typing import Any, Optional, TypeVar

import grpc
from google.protobuf.message import Message

from flotilla.v1 import events_pb2 as epb
from flotilla.v1 import limits_pb2 as lpb
from flotilla.v1 import ops_pb2 as opb
from flotilla.v1 import queue_pb2 as qpb
from flotilla.v1 import schedule_pb2 as spb
from flotilla.v1 import worker_pb2 as wpb
from flotilla.v1 import workflows_pb2 as fpb

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

QUEUE_SERVICE = qpb.DESCRIPTOR.services_by_name["QueueService"].full_name
WORKER_SERVICE = wpb.DESCRIPTOR.services_by_name["WorkerService"].full_name
SCHEDULE_SERVICE = spb.DESCRIPTOR.services_by_name["ScheduleService"].full_name
LIMIT_SERVICE = lpb.DESCRIPTOR.services_by_name["LimitService"].full_name
EVENT_SERVICE = epb.DESCRIPTOR.services_by_name["EventService"].full_name
WORKFLOW_SERVICE = fpb.DESCRIPTOR.services_by_name["WorkflowService"].full_name
OPS_SERVICE = opb.DESCRIPTOR.services_by_name["OpsService"].full_name

#: Largest reply accepted (results can be large JSON documents), as in the Rust client.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: The largest request a node reads (``flotilla_proto::MAX_REQUEST_BYTES``): a larger one is
#: refused before it is sent.
MAX_REQUEST_BYTES = 64 * 1024 * 1024


def method_path(service: str, method: str) -> str:
    """The HTTP/2 path of a method, e.g. ``/flotilla.v1.QueueService/Submit``."""
    return f"/{service}/{method}"


def _unary(
    channel: grpc.Channel,
    method: str,
    req: type[Req],
    resp: type[Resp],
    service: str = QUEUE_SERVICE,
) -> grpc.UnaryUnaryMultiCallable[Req, Resp]:
    return channel.unary_unary(
        method_path(service, method),
        request_serializer=req.SerializeToString,
        response_deserializer=resp.FromString,
    )


class QueueStub:
    """The client-facing calls of one node (``QueueService``, and ``ScheduleService``'s,
    ``LimitService``'s and ``WorkflowService``'s)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.submit = _unary(channel, "Submit", qpb.SubmitRequest, qpb.SubmitResponse)
        self.get_task = _unary(channel, "GetTask", qpb.GetTaskRequest, qpb.GetTaskResponse)
        self.cancel = _unary(channel, "Cancel", qpb.CancelRequest, qpb.CancelResponse)
        self.queue_stats = _unary(
            channel, "QueueStats", qpb.QueueStatsRequest, qpb.QueueStatsResponse
        )
        self.cluster_status = _unary(
            channel, "ClusterStatus", qpb.ClusterStatusRequest, qpb.ClusterStatusResponse
        )
        self.list_workers = _unary(
            channel, "ListWorkers", qpb.ListWorkersRequest, qpb.ListWorkersResponse
        )
        self.find_tasks_by_idempotency_key = _unary(
            channel,
            "FindTasksByIdempotencyKey",
            qpb.FindTasksByIdempotencyKeyRequest,
            qpb.FindTasksByIdempotencyKeyResponse,
        )
        self.add_schedule = _unary(
            channel,
            "AddSchedule",
            spb.AddScheduleRequest,
            spb.AddScheduleResponse,
            SCHEDULE_SERVICE,
        )
        self.list_schedules = _unary(
            channel,
            "ListSchedules",
            spb.ListSchedulesRequest,
            spb.ListSchedulesResponse,
            SCHEDULE_SERVICE,
        )
        self.pause_schedule = _unary(
            channel,
            "PauseSchedule",
            spb.PauseScheduleRequest,
            spb.PauseScheduleResponse,
            SCHEDULE_SERVICE,
        )
        self.remove_schedule = _unary(
            channel,
            "RemoveSchedule",
            spb.RemoveScheduleRequest,
            spb.RemoveScheduleResponse,
            SCHEDULE_SERVICE,
        )
        self.set_limit = _unary(
            channel, "SetLimit", lpb.SetLimitRequest, lpb.SetLimitResponse, LIMIT_SERVICE
        )
        self.list_limits = _unary(
            channel, "ListLimits", lpb.ListLimitsRequest, lpb.ListLimitsResponse, LIMIT_SERVICE
        )
        self.remove_limit = _unary(
            channel, "RemoveLimit", lpb.RemoveLimitRequest, lpb.RemoveLimitResponse, LIMIT_SERVICE
        )
        self.submit_workflow = _unary(
            channel,
            "SubmitWorkflow",
            fpb.SubmitWorkflowRequest,
            fpb.SubmitWorkflowResponse,
            WORKFLOW_SERVICE,
        )
        self.get_workflow = _unary(
            channel,
            "GetWorkflow",
            fpb.GetWorkflowRequest,
            fpb.GetWorkflowResponse,
            WORKFLOW_SERVICE,
        )
        self.revoke = _unary(channel, "Revoke", opb.RevokeRequest, opb.RevokeResponse, OPS_SERVICE)
        self.describe_task = _unary(
            channel, "DescribeTask", opb.DescribeTaskRequest, opb.DescribeTaskResponse, OPS_SERVICE
        )
        self.wait_results: grpc.UnaryStreamMultiCallable[qpb.WaitResultsRequest, qpb.TaskInfo] = (
            channel.unary_stream(
                method_path(QUEUE_SERVICE, "WaitResults"),
                request_serializer=qpb.WaitResultsRequest.SerializeToString,
                response_deserializer=qpb.TaskInfo.FromString,
            )
        )
        self.watch: grpc.UnaryStreamMultiCallable[epb.WatchRequest, epb.WatchResponse] = (
            channel.unary_stream(
                method_path(EVENT_SERVICE, "Watch"),
                request_serializer=epb.WatchRequest.SerializeToString,
                response_deserializer=epb.WatchResponse.FromString,
            )
        )


class WorkerStub:
    """The worker session of one node."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.session: grpc.StreamStreamMultiCallable[wpb.WorkerMessage, wpb.NodeMessage] = (
            channel.stream_stream(
                method_path(WORKER_SERVICE, "Session"),
                request_serializer=wpb.WorkerMessage.SerializeToString,
                response_deserializer=wpb.NodeMessage.FromString,
            )
        )


def channel_options() -> list[tuple[str, int]]:
    """Options of every channel the SDK opens: large replies, and keepalive pings so a node that
    stopped answering without closing the connection (SIGSTOPped, frozen) is noticed within
    about a second and the call retried on another node, whatever its timeout (as the Rust
    client)."""
    return [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # gRPC waits for a new connection's HTTP/2 handshake for this long (20 s by default),
        # holding calls meanwhile: a node that accepts and never answers would hold them too.
        ("grpc.min_reconnect_backoff_ms", 1_000),
        ("grpc.keepalive_time_ms", 500),
        ("grpc.keepalive_timeout_ms", 500),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


#: The environment variable naming the CA file when ``tls_ca`` is not given.
TLS_CA_ENV = "FLOTILLA_TLS_CA"


def tls_root(tls_ca: Optional[str]) -> Optional[bytes]:
    """The CA certificate (PEM) that signed the nodes, read from ``tls_ca`` or else from
    ``$FLOTILLA_TLS_CA``; ``None``: plaintext. Read once, so a wrong path fails at once."""
    path = tls_ca if tls_ca is not None else os.environ.get(TLS_CA_ENV)
    if not path:
        return None
    with open(path, "rb") as f:
        pem = f.read()
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError(f"{path}: no PEM certificate in it")
    return pem


class _ClientCallDetails(grpc.ClientCallDetails):
    """The details of a call with metadata added (grpc's own type has no public constructor)."""

    def __init__(
        self, base: grpc.ClientCallDetails, metadata: tuple[tuple[str, str | bytes], ...]
    ) -> None:
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class _Token(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._header: tuple[str, str | bytes] = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        kept = tuple(m for m in (details.metadata or ()) if m[0] != "authorization")
        return _ClientCallDetails(details, (*kept, self._header))

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def resolve_token(token: Optional[str]) -> Optional[str]:
    """The token to present: ``token``, else ``$FLOTILLA_TOKEN``, else none. A node that is not
    on loopback (or runs with ``--require-token``) refuses calls without one."""
    chosen = token if token is not None else os.environ.get("FLOTILLA_TOKEN")
    return chosen.strip() if chosen and chosen.strip() else None


def open_channel(addr: str, root: Optional[bytes], token: Optional[str]) -> grpc.Channel:
    """A channel to one node (opened lazily by grpc): TLS trusting ``root`` (nodes started with
    ``--tls-*``; a node must present a certificate of that CA for ``addr``'s host), or plaintext
    when ``root`` is None; ``token``, when given, is presented on every call."""
    if root is None:
        channel = grpc.insecure_channel(addr, options=channel_options())
    else:
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        channel = grpc.secure_channel(addr, credentials, options=channel_options())
    if token is None:
        return channel
    return grpc.intercept_channel(channel, _Token(token))


def target(addr: str) -> str:
    """A grpc target from a node address: ``host:port``, with an optional ``http://``."""
    for prefix in ("http://", "grpc://"):
        if addr.startswith(prefix):
            return addr[len(prefix) :]
    return addr
