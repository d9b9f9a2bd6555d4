"""The checked-in stubs (src/flotilla/v1) describe exactly the project's .proto files: a
change to proto/ that was not regenerated (scripts/gen_proto.py) fails here."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from flotilla.v1 import events_pb2, queue_pb2, schedule_pb2, worker_pb2

PROTO_ROOT = Path(__file__).resolve().parents[3] / "proto" / "protos"


@pytest.mark.parametrize(
    "module",
    [queue_pb2, schedule_pb2, worker_pb2, events_pb2],
    ids=["queue", "schedule", "worker", "events"],
)
def test_stubs_match_the_proto_files(module: object, tmp_path: Path) -> None:
    from grpc_tools import protoc

    name = module.DESCRIPTOR.name  # type: ignore[attr-defined]
    out = tmp_path / "set.pb"
    assert (
        protoc.main(
            ["protoc", f"-I{PROTO_ROOT}", f"--descriptor_set_out={out}", str(PROTO_ROOT / name)]
        )
        == 0
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(fresh.message_type)  # protoc adds them to descriptor sets only
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(
        module.DESCRIPTOR.serialized_pb  # type: ignore[attr-defined]
    )
    assert checked_in == fresh, (
        f"src/flotilla/v1 is out of date with proto/protos/{name}: "
        "run `python client/python/scripts/gen_proto.py`"
    )


def _drop_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for m in messages:
        for f in m.field:
            f.ClearField("json_name")
        _drop_json_names(m.nested_type)
