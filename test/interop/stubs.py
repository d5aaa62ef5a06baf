"""Python stubs generated at test time with Debian's protoc and gRPC's Python plugin.

jobworker's stubs come from our proto/; the standard services' messages (health, reflection) from
Debian's grpc-proto package, not from our copies, so the two sides share nothing but the wire.
Those standard files live in a package named ``grpc``, which would shadow the grpc library if
imported as packages, so their message modules are loaded from their files under other names.
"""

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

PROTOC = "/usr/bin/protoc"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
WELL_KNOWN = "/usr/include"  # libprotobuf-dev: google/protobuf/*.proto
GRPC_PROTO = "/usr/share/grpc-proto"  # grpc-proto: grpc/health, grpc/reflection


def _protoc(*args: str) -> None:
    result = subprocess.run([PROTOC, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"protoc {' '.join(args)} failed: {result.stderr.strip()}")


def _load(name: str, file: Path):
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Stubs:
    """Generated modules: jobworker messages and service stubs; health and reflection messages."""

    def __init__(self, proto_dir: str, out: Path):
        ours = out / "jobworker"
        standard = out / "standard"
        ours.mkdir(parents=True)
        standard.mkdir(parents=True)
        _protoc(f"-I{proto_dir}", f"-I{WELL_KNOWN}", f"--python_out={ours}", f"--grpc_out={ours}",
                f"--plugin=protoc-gen-grpc={GRPC_PYTHON_PLUGIN}", "jobworker/v1/jobworker.proto")
        _protoc(f"-I{GRPC_PROTO}", f"--python_out={standard}", "grpc/health/v1/health.proto",
                "grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto")
        # protoc's own descriptors of our files, to compare with what reflection serves
        self.descriptor_set = out / "jobworker.binpb"
        _protoc(f"-I{proto_dir}", f"-I{WELL_KNOWN}", "--include_imports", f"--descriptor_set_out={self.descriptor_set}",
                "jobworker/v1/jobworker.proto")
        sys.path.insert(0, str(ours))
        self.pb = importlib.import_module("jobworker.v1.jobworker_pb2")
        self.grpc = importlib.import_module("jobworker.v1.jobworker_pb2_grpc")
        self.health = _load("std_health_pb2", standard / "grpc/health/v1/health_pb2.py")
        self.reflection = {
            "v1": _load("std_reflection_v1_pb2", standard / "grpc/reflection/v1/reflection_pb2.py"),
            "v1alpha": _load("std_reflection_v1alpha_pb2", standard / "grpc/reflection/v1alpha/reflection_pb2.py"),
        }
