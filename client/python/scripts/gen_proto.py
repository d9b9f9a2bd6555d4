"""Regenerate the checked-in protobuf stubs (src/flotilla/v1) from the project's .proto files.

Run from anywhere: ``python client/python/scripts/gen_proto.py``. It needs the pinned
``grpcio-tools`` of the ``test`` extra (``pip install './client/python[test]'``), so that a
regeneration changes the stubs only when the .proto files changed. ``tests/test_proto_fresh.py``
fails when the stubs are out of date.

Only the messages are generated (``*_pb2.py`` and typed ``*_pb2.pyi``); the service glue is
``flotilla/_rpc.py``, typed by hand over the generated descriptors.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.75.1"
PROTOS = (
    "flotilla/v1/queue.proto",
    "flotilla/v1/schedule.proto",
    "flotilla/v1/limits.proto",
    "flotilla/v1/worker.proto",
    "flotilla/v1/events.proto",
    "flotilla/v1/workflows.proto",
    "flotilla/v1/ops.proto",
)

PYTHON_DIR = Path(__file__).resolve().parent.parent
PROTO_ROOT = PYTHON_DIR.parent.parent / "proto" / "protos"
OUT_DIR = PYTHON_DIR / "src"


def main() -> int:
    from importlib.metadata import version

    from grpc_tools import protoc

    found = version("grpcio-tools")
    if found != GRPCIO_TOOLS_VERSION:
        print(
            f"grpcio-tools {found} found, {GRPCIO_TOOLS_VERSION} needed: "
            f"pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}",
            file=sys.stderr,
        )
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            *(str(PROTO_ROOT / p) for p in PROTOS),
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        generated = Path(tmp) / "flotilla" / "v1"
        for path in sorted(generated.iterdir()):
            shutil.copyfile(path, OUT_DIR / "flotilla" / "v1" / path.name)
            print(f"wrote src/flotilla/v1/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
