"""Generated protobuf messages of the ``flotilla.v1`` protocol (``proto/protos/flotilla/v1``).

Do not edit: regenerate with ``scripts/gen_proto.py``. The package path matches the proto
package, so the generated modules import each other as protoc expects.
"""
