"""jobworker's API driven by C-core gRPC (Debian's python3-grpcio) over mutual TLS.

Run by `npm run test:interop` (test/interop/run.ts), which starts the daemon and passes a JSON file:
address, CA, one certificate per identity, state and work directories, the proto directory. Prints
"ok - …" or "not ok - …" per check and closes with "N passed, N failed"; exits 1 if any failed.
"""

import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, json_format

from reflection_client import DynamicService, ReflectionClient
from stubs import Stubs

TIMEOUT = 20
MAX_SAFE = 2**53 - 1
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
# src/job-path.ts: the PATH a job gets when its environment has none.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Suite:
    def __init__(self, config):
        self.config = config
        self.passed = 0
        self.failed = 0
        self._channels = {}
        self.work = Path(tempfile.mkdtemp(prefix="py-", dir=config["workDir"]))
        # Jobs run as a dynamic uid: they read the streaming check's data file from here.
        os.chmod(self.work, 0o755)
        self.stubs = Stubs(config["protoDir"], self.work / "gen")
        self.pb = self.stubs.pb

    # --- plumbing -------------------------------------------------------------------------------

    def check(self, name, body):
        started = time.monotonic()
        try:
            body()
        except Exception as error:  # a failed check is reported, and the suite goes on
            self.failed += 1
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            print(f"not ok - {name}: {detail}", flush=True)
            traceback.print_exc(file=sys.stderr)
            return
        self.passed += 1
        print(f"ok - {name} ({time.monotonic() - started:.2f} s)", flush=True)

    def channel(self, who):
        if who not in self._channels:
            identity = self.config["identities"][who]
            credentials = grpc.ssl_channel_credentials(
                root_certificates=Path(self.config["ca"]).read_bytes(),
                private_key=Path(identity["key"]).read_bytes(),
                certificate_chain=Path(identity["cert"]).read_bytes(),
            )
            self._channels[who] = grpc.secure_channel(self.config["address"], credentials)
        return self._channels[who]

    def jobs(self, who):
        return self.stubs.grpc.JobServiceStub(self.channel(who))

    def close(self):
        for channel in self._channels.values():
            channel.close()

    @staticmethod
    def code(call):
        """The status name a call ends with ('OK' if it succeeds); streams are read to the end."""
        try:
            result = call()
            if hasattr(result, "__next__"):
                for _ in result:
                    pass
            return "OK"
        except grpc.RpcError as error:
            return error.code().name

    @staticmethod
    def error(call):
        try:
            result = call()
            if hasattr(result, "__next__"):
                for _ in result:
                    pass
        except grpc.RpcError as error:
            return error.code().name, error.details()
        raise AssertionError("the call succeeded")

    def start(self, who, command, *args, **fields):
        return self.jobs(who).StartJob(self.pb.StartJobRequest(command=command, args=list(args), **fields), timeout=TIMEOUT).job

    def wait_finished(self, who, job_id):
        """Follows the job's output to its end; returns (chunks, final status)."""
        chunks, final = [], None
        for message in self.jobs(who).StreamLogs(self.pb.StreamLogsRequest(job_id=job_id, follow=True), timeout=60):
            chunks.extend(message.chunks)
            if message.HasField("final_status"):
                final = message.final_status
        return chunks, final

    def stream(self, who, job_id, **fields):
        chunks = []
        for message in self.jobs(who).StreamLogs(self.pb.StreamLogsRequest(job_id=job_id, **fields), timeout=60):
            chunks.extend(message.chunks)
        return chunks

    def bytes_of(self, chunks, stream):
        return b"".join(c.data for c in chunks if c.stream == stream)


# --- every RPC through the generated stubs -------------------------------------------------------


def rpcs(s: Suite):
    pb = s.pb

    def start_stream_get():
        job = s.start("alice", "sh", "-c", "echo out; echo err >&2; exit 3",
                      limits=pb.Limits(memory_bytes=128 << 20, cpu=0.5, pids=64, cpu_weight=200))
        assert job.owner == "alice" and job.state == pb.JOB_STATE_RUNNING, job
        assert job.limits.memory_bytes == 128 << 20 and job.limits.HasField("cpu") and job.limits.pids == 64
        chunks, final = s.wait_finished("alice", job.id)
        assert s.bytes_of(chunks, pb.STREAM_STDOUT) == b"out\n" and s.bytes_of(chunks, pb.STREAM_STDERR) == b"err\n", chunks
        assert final.state == pb.JOB_STATE_FAILED and final.HasField("exit_code") and final.exit_code == 3, final
        got = s.jobs("alice").GetJob(pb.GetJobRequest(job_id=job.id), timeout=TIMEOUT).job
        assert got.id == job.id and got.exit_code == 3 and got.finished_at.seconds > 0 and got.log.size_bytes > 0, got

    def env_map():
        # Exactly the map, plus the default PATH the daemon adds when the map has none (proto, env).
        job = s.start("alice", "/usr/bin/env", env={"GREETING": "hello world", "EMPTY": ""})
        chunks, _ = s.wait_finished("alice", job.id)
        assert sorted(s.bytes_of(chunks, pb.STREAM_STDOUT).decode().splitlines()) == ["EMPTY=", "GREETING=hello world", DEFAULT_PATH], chunks
        job = s.start("alice", "/usr/bin/env", env={"PATH": "/bin", "EMPTY": ""})
        chunks, _ = s.wait_finished("alice", job.id)
        assert sorted(s.bytes_of(chunks, pb.STREAM_STDOUT).decode().splitlines()) == ["EMPTY=", "PATH=/bin"], chunks

    def list_pages():
        ids = [s.start("bob", "true").id for _ in range(3)]
        seen, token = [], ""
        while True:
            page = s.jobs("bob").ListJobs(pb.ListJobsRequest(page_size=2, page_token=token), timeout=TIMEOUT)
            assert len(page.jobs) <= 2
            seen += [j.id for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
        assert [i for i in seen if i in ids] == ids, (seen, ids)
        assert all(j.owner == "bob" for j in s.jobs("bob").ListJobs(pb.ListJobsRequest(), timeout=TIMEOUT).jobs)

    def watch():
        job = s.start("alice", "sh", "-c", "read x")  # stdin is /dev/null: ends at once
        states = []
        for message in s.jobs("alice").WatchJobs(pb.WatchJobsRequest(job_id=job.id), timeout=30):
            states.append((message.previous_state, message.job.state))
        assert states[0][0] == pb.JOB_STATE_UNSPECIFIED, states
        assert states[-1][1] in (pb.JOB_STATE_EXITED, pb.JOB_STATE_FAILED), states

    def stop_remove():
        job = s.start("alice", "sleep", "1000")
        stopped = s.jobs("alice").StopJob(pb.StopJobRequest(job_id=job.id, grace_ms=0), timeout=TIMEOUT)
        assert stopped.job.state == pb.JOB_STATE_STOPPED and stopped.job.stopped_by == "alice" and not stopped.already_finished, stopped
        again = s.jobs("alice").StopJob(pb.StopJobRequest(job_id=job.id), timeout=TIMEOUT)
        assert again.already_finished
        s.jobs("alice").RemoveJob(pb.RemoveJobRequest(job_id=job.id), timeout=TIMEOUT)
        assert s.code(lambda: s.jobs("alice").GetJob(pb.GetJobRequest(job_id=job.id), timeout=TIMEOUT)) == "NOT_FOUND"

    s.check("StartJob, StreamLogs (follow, final status), GetJob through Debian protoc stubs", start_stream_get)
    s.check("StartJob with an env map: the job sees exactly it (and a default PATH when it has none)", env_map)
    s.check("ListJobs: pages of 2, oldest first, only the caller's jobs", list_pages)
    s.check("WatchJobs: the current status, then changes until the job ends", watch)
    s.check("StopJob (then again: already_finished), RemoveJob", stop_remove)


def error_codes(s: Suite):
    pb = s.pb
    jobs = s.jobs("admin")
    finished = s.start("admin", "echo", "done")
    s.wait_finished("admin", finished.id)

    def expect(code, details_start, call):
        got, details = s.error(call)
        assert got == code, (got, details)
        assert details.startswith(details_start), details

    cases = [
        ("INVALID_ARGUMENT: empty command", "INVALID_ARGUMENT", "command: ", lambda: jobs.StartJob(pb.StartJobRequest(), timeout=TIMEOUT)),
        ("INVALID_ARGUMENT: a malformed job id", "INVALID_ARGUMENT", "job_id: must be a job id", lambda: jobs.GetJob(pb.GetJobRequest(job_id="../x"), timeout=TIMEOUT)),
        ("INVALID_ARGUMENT: memory_bytes 2^64-1 names the field and the largest number accepted", "INVALID_ARGUMENT",
         f"limits.memory_bytes: {2**64 - 1} is above {MAX_SAFE}",
         lambda: jobs.StartJob(pb.StartJobRequest(command="true", limits=pb.Limits(memory_bytes=2**64 - 1)), timeout=TIMEOUT)),
        ("INVALID_ARGUMENT: an IO rate of 2^53", "INVALID_ARGUMENT", f"limits.io[0].read_iops: {2**53} is above {MAX_SAFE}",
         lambda: jobs.StartJob(pb.StartJobRequest(command="true", limits=pb.Limits(io=[pb.IoLimit(read_iops=2**53)])), timeout=TIMEOUT)),
        ("INVALID_ARGUMENT: from_offset 2^63", "INVALID_ARGUMENT", f"from_offset: {2**63} is above {MAX_SAFE}",
         lambda: jobs.StreamLogs(pb.StreamLogsRequest(job_id=finished.id, from_offset=2**63), timeout=TIMEOUT)),
        ("INVALID_ARGUMENT: from_offset inside a record", "INVALID_ARGUMENT", "from_offset: offset 17 is not the start of a record",
         lambda: jobs.StreamLogs(pb.StreamLogsRequest(job_id=finished.id, from_offset=17), timeout=TIMEOUT)),
        ("NOT_FOUND: an unknown job", "NOT_FOUND", "job ", lambda: jobs.GetJob(pb.GetJobRequest(job_id=UNKNOWN_ID), timeout=TIMEOUT)),
        ("PERMISSION_DENIED: a reader starting a job", "PERMISSION_DENIED", "alice (role reader) may not call StartJob",
         lambda: s.jobs("alice_reader").StartJob(pb.StartJobRequest(command="true"), timeout=TIMEOUT)),
        ("UNAUTHENTICATED: a certificate without an identity", "UNAUTHENTICATED", "client certificate rejected",
         lambda: s.jobs("no_identity").ListJobs(pb.ListJobsRequest(), timeout=TIMEOUT)),
        ("RESOURCE_EXHAUSTED: a request over 2 MiB", "RESOURCE_EXHAUSTED", "",
         lambda: jobs.StartJob(pb.StartJobRequest(command="echo", args=["y" * 100_000] * 25), timeout=TIMEOUT)),
        ("UNIMPLEMENTED: a method the service does not have", "UNIMPLEMENTED", "",
         lambda: s.channel("admin").unary_unary("/jobworker.v1.JobService/Nope")(b"", timeout=TIMEOUT)),
    ]
    for name, code, details, call in cases:
        s.check(name, lambda code=code, details=details, call=call: expect(code, details, call))

    def failed_precondition():
        running = s.start("admin", "sleep", "1000")
        try:
            expect("FAILED_PRECONDITION", "", lambda: jobs.RemoveJob(pb.RemoveJobRequest(job_id=running.id), timeout=TIMEOUT))
        finally:
            jobs.StopJob(pb.StopJobRequest(job_id=running.id, grace_ms=0), timeout=TIMEOUT)

    def unavailable():
        channel = s.channel("other_ca")  # TLS refuses a certificate from another CA
        stub = s.stubs.grpc.JobServiceStub(channel)
        assert s.code(lambda: stub.ListJobs(s.pb.ListJobsRequest(), timeout=5)) == "UNAVAILABLE"

    def deadline():
        running = s.start("admin", "sleep", "1000")
        try:
            assert s.code(lambda: jobs.StreamLogs(pb.StreamLogsRequest(job_id=running.id, follow=True), timeout=0.5)) == "DEADLINE_EXCEEDED"
        finally:
            jobs.StopJob(pb.StopJobRequest(job_id=running.id, grace_ms=0), timeout=TIMEOUT)

    def data_loss():
        job = s.start("admin", "sh", "-c", "echo one; sleep 0.1; echo two; sleep 0.1; echo three")
        chunks, _ = s.wait_finished("admin", job.id)
        assert len(chunks) == 3, chunks
        log = Path(s.config["stateDir"]) / "logs" / f"{job.id}.log"
        with open(log, "r+b") as f:  # the second record's header CRC (docs/log-format.md)
            f.seek(chunks[1].offset + 20)
            f.write(b"\xde\xad\xbe\xef")
        expect("DATA_LOSS", f"log corrupt at byte {chunks[1].offset}", lambda: jobs.StreamLogs(pb.StreamLogsRequest(job_id=job.id), timeout=TIMEOUT))

    s.check("FAILED_PRECONDITION: removing a running job", failed_precondition)
    s.check("UNAVAILABLE: a client certificate from another CA is refused at the handshake", unavailable)
    s.check("DEADLINE_EXCEEDED: the client's deadline ends a follow stream", deadline)
    s.check("DATA_LOSS: a log whose record header was damaged on disk", data_loss)


# --- byte-exact streaming, resume at random chunk boundaries -----------------------------------------


def streaming(s: Suite, rng: random.Random):
    pb = s.pb
    data = os.urandom(1 << 20)
    file = s.work / "data"
    file.write_bytes(data)
    script = "\n".join([
        f"dd if={file} bs=1048576 count=1 status=none",
        f"dd if={file} bs=786432 count=1 status=none >&2",
        "for i in $(seq 1 30); do echo out$i; echo err$i >&2; done",
        f"dd if={file} bs=1048576 count=1 status=none",
        f"dd if={file} bs=500000 count=1 status=none >&2",
        "for i in $(seq 1 30); do printf o$i; printf e$i >&2; sleep 0.002; done",
        f"dd if={file} bs=300000 count=1 status=none",
    ])
    job = s.start("alice", "sh", "-c", script)
    s.wait_finished("alice", job.id)
    expected = {
        pb.STREAM_STDOUT: data + "".join(f"out{i}\n" for i in range(1, 31)).encode() + data + "".join(f"o{i}" for i in range(1, 31)).encode() + data[:300000],
        pb.STREAM_STDERR: data[:786432] + "".join(f"err{i}\n" for i in range(1, 31)).encode() + data[:500000] + "".join(f"e{i}" for i in range(1, 31)).encode(),
    }
    chunks = s.stream("alice", job.id)

    def whole():
        for stream, want in expected.items():
            assert s.bytes_of(chunks, stream) == want, f"{pb.Stream.Name(stream)}: {len(s.bytes_of(chunks, stream))} bytes, {len(want)} expected"
        for i in range(1, len(chunks)):
            assert chunks[i].offset == chunks[i - 1].next_offset, f"chunk {i} starts at {chunks[i].offset}, chunk {i - 1} ended at {chunks[i - 1].next_offset}"
        size = s.jobs("alice").GetJob(pb.GetJobRequest(job_id=job.id), timeout=TIMEOUT).job.log.size_bytes
        assert chunks[-1].next_offset == size, (chunks[-1].next_offset, size)
        assert s.stream("alice", job.id, from_offset=size) == []
        print(f"# {len(chunks)} chunks, the biggest {max(len(c.data) for c in chunks)} bytes", flush=True)

    def resume_anywhere():
        boundaries = sorted(rng.sample(range(len(chunks)), min(len(chunks), 24)))
        for i in boundaries:
            resumed = s.stream("alice", job.id, from_offset=chunks[i].next_offset)
            for stream in expected:
                want = s.bytes_of(chunks[i + 1:], stream)
                got = s.bytes_of(resumed, stream)
                assert got == want, f"after chunk {i} (next_offset {chunks[i].next_offset}): {pb.Stream.Name(stream)} {len(got)} bytes, {len(want)} expected"

    def resume_one_stream():
        for i in sorted(rng.sample(range(len(chunks)), min(len(chunks), 8))):
            resumed = s.stream("alice", job.id, from_offset=chunks[i].next_offset, streams=[pb.STREAM_STDERR])
            assert all(c.stream == pb.STREAM_STDERR for c in resumed)
            assert s.bytes_of(resumed, pb.STREAM_STDERR) == s.bytes_of(chunks[i + 1:], pb.STREAM_STDERR), f"after chunk {i}"

    def stop_and_resume():
        # A client that stops after the first message and resumes at its last chunk's next_offset.
        got = {stream: b"" for stream in expected}
        offset, messages = 0, 0
        while True:
            call = s.jobs("alice").StreamLogs(pb.StreamLogsRequest(job_id=job.id, from_offset=offset), timeout=60)
            message = next(call, None)
            call.cancel()
            if message is None or not message.chunks:
                break
            messages += 1
            for c in message.chunks:
                got[c.stream] += c.data
            offset = message.chunks[-1].next_offset
        assert got == expected, {pb.Stream.Name(k): len(v) for k, v in got.items()}
        print(f"# {messages} reconnections", flush=True)

    s.check("StreamLogs: every byte of a 4 MiB mixed stdout/stderr log, chunks tile the log", whole)
    s.check(f"StreamLogs: resuming at random chunk boundaries gives exactly the rest, per stream", resume_anywhere)
    s.check("StreamLogs: resuming with only stderr selected", resume_one_stream)
    s.check("StreamLogs: a client that takes one message per connection and resumes gets every byte", stop_and_resume)


# --- the RBAC matrix ----------------------------------------------------------------------------------


def rbac(s: Suite):
    pb = s.pb
    a = s.start("alice", "sleep", "1000")
    b = s.start("bob", "sleep", "1000")

    def first(call):
        return lambda: next(iter(call()))

    def reads(who, job_id):
        j = s.jobs(who)
        return {
            "GetJob": s.code(lambda: j.GetJob(pb.GetJobRequest(job_id=job_id), timeout=TIMEOUT)),
            "StreamLogs": s.code(lambda: j.StreamLogs(pb.StreamLogsRequest(job_id=job_id), timeout=TIMEOUT)),
            "WatchJobs": s.code(first(lambda: j.WatchJobs(pb.WatchJobsRequest(job_id=job_id), timeout=TIMEOUT))),
        }

    def read_matrix():
        ok = {"GetJob": "OK", "StreamLogs": "OK", "WatchJobs": "OK"}
        hidden = {k: "NOT_FOUND" for k in ok}
        denied = {k: "PERMISSION_DENIED" for k in ok}
        for who, want in [("alice", ok), ("alice_reader", ok), ("admin", ok), ("bob", hidden), ("nobody", denied)]:
            assert reads(who, a.id) == want, (who, reads(who, a.id))
        assert reads("alice_reader", b.id) == hidden
        assert reads("bob", UNKNOWN_ID) == hidden  # ids cannot be probed

    def list_matrix():
        def ids(who):
            return {j.id for j in s.jobs(who).ListJobs(pb.ListJobsRequest(page_size=1000), timeout=TIMEOUT).jobs}
        assert a.id in ids("alice") and b.id not in ids("alice")
        assert a.id in ids("alice_reader") and b.id not in ids("alice_reader")
        assert {a.id, b.id} <= ids("admin")
        assert b.id not in {j.id for j in s.jobs("alice").ListJobs(pb.ListJobsRequest(owner="bob"), timeout=TIMEOUT).jobs}
        assert s.code(lambda: s.jobs("nobody").ListJobs(pb.ListJobsRequest(), timeout=TIMEOUT)) == "PERMISSION_DENIED"

    def write_matrix():
        start = {who: s.code(lambda who=who: s.jobs(who).StartJob(pb.StartJobRequest(command="true"), timeout=TIMEOUT))
                 for who in ("admin", "alice", "alice_reader", "nobody")}
        assert start == {"admin": "OK", "alice": "OK", "alice_reader": "PERMISSION_DENIED", "nobody": "PERMISSION_DENIED"}, start
        as_root = pb.StartJobRequest(command="id", user=pb.JobUser(uid=65534, gid=65534))
        assert s.code(lambda: s.jobs("alice").StartJob(as_root, timeout=TIMEOUT)) == "PERMISSION_DENIED"
        assert s.code(lambda: s.jobs("admin").StartJob(as_root, timeout=TIMEOUT)) == "OK"

        def stop(who, job_id):
            return s.code(lambda: s.jobs(who).StopJob(pb.StopJobRequest(job_id=job_id, grace_ms=0), timeout=TIMEOUT))

        def remove(who, job_id):
            return s.code(lambda: s.jobs(who).RemoveJob(pb.RemoveJobRequest(job_id=job_id), timeout=TIMEOUT))

        assert [stop(w, a.id) for w in ("alice_reader", "bob", "nobody")] == ["PERMISSION_DENIED", "NOT_FOUND", "PERMISSION_DENIED"]
        assert stop("alice", a.id) == "OK" and stop("admin", b.id) == "OK"
        assert [remove(w, a.id) for w in ("alice_reader", "bob", "nobody")] == ["PERMISSION_DENIED", "NOT_FOUND", "PERMISSION_DENIED"]
        assert remove("alice", a.id) == "OK" and remove("admin", b.id) == "OK"

    s.check("RBAC: GetJob/StreamLogs/WatchJobs by reader, writer, admin, another writer, no role", read_matrix)
    s.check("RBAC: ListJobs shows each identity its own jobs, admins all, no role nothing", list_matrix)
    s.check("RBAC: StartJob (and choosing the user), StopJob, RemoveJob per role", write_matrix)


# --- health -----------------------------------------------------------------------------------------


def health(s: Suite):
    h = s.stubs.health
    serving = h.HealthCheckResponse.SERVING

    def calls(who):
        channel = s.channel(who)
        check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=h.HealthCheckRequest.SerializeToString,
                                    response_deserializer=h.HealthCheckResponse.FromString)
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch", request_serializer=h.HealthCheckRequest.SerializeToString,
                                     response_deserializer=h.HealthCheckResponse.FromString)
        return check, watch

    def everyone():
        for who in ("admin", "alice", "alice_reader", "nobody"):
            check, watch = calls(who)
            for service in ("", "jobworker.v1.JobService"):
                assert check(h.HealthCheckRequest(service=service), timeout=TIMEOUT).status == serving, (who, service)
            assert s.code(lambda: check(h.HealthCheckRequest(service="nope"), timeout=TIMEOUT)) == "NOT_FOUND"
            stream = watch(h.HealthCheckRequest(service=""), timeout=TIMEOUT)
            assert next(stream).status == serving, who
            stream.cancel()

    def no_identity():
        check, _ = calls("no_identity")
        assert s.code(lambda: check(h.HealthCheckRequest(), timeout=TIMEOUT)) == "UNAUTHENTICATED"

    s.check("health: Check and Watch SERVING for every verified certificate, no role included; unknown service NOT_FOUND", everyone)
    s.check("health: a certificate without an identity gets UNAUTHENTICATED", no_identity)


# --- reflection ----------------------------------------------------------------------------------


def reflection(s: Suite):
    def services():
        for version, module in s.stubs.reflection.items():
            for who in ("nobody", "alice_reader"):
                names = sorted(ReflectionClient(s.channel(who), module, version).list_services())
                assert names == ["grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                                 "grpc.reflection.v1alpha.ServerReflection", "jobworker.v1.JobService"], (version, who, names)

    def real_descriptors():
        client = ReflectionClient(s.channel("nobody"), s.stubs.reflection["v1"], "v1")
        names = client.file_containing_symbol("jobworker.v1.JobService")
        assert names == ["jobworker/v1/jobworker.proto", "google/protobuf/timestamp.proto"], names
        served = client.received["jobworker/v1/jobworker.proto"]
        assert list(served.dependency) == ["google/protobuf/timestamp.proto"]
        # What Debian's protoc makes of the same files, field for field (reflection adds only comments).
        protoc = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(s.stubs.descriptor_set.read_bytes()).file}
        for name, proto in client.received.items():
            stripped = descriptor_pb2.FileDescriptorProto()
            stripped.CopyFrom(proto)
            stripped.ClearField("source_code_info")
            assert stripped.SerializeToString() == protoc[name].SerializeToString(), f"{name} differs from protoc's"
        health_files = client.file_containing_symbol("grpc.health.v1.Health")
        assert health_files == ["grpc/health/v1/health.proto"], health_files
        for symbol in ("jobworker.v1.JobService.StartJob", "jobworker.v1.Limits.memory_bytes", "jobworker.v1.StartJobRequest.EnvEntry", "jobworker.v1.JOB_STATE_RUNNING"):
            assert client.file_containing_symbol(symbol)[0] == "jobworker/v1/jobworker.proto", symbol

    def reflection_only_client():
        # Nothing of jobworker's protos or stubs: every type comes from reflection (v1alpha here,
        # as older tools use), for an identity that has only the writer role.
        client = ReflectionClient(s.channel("alice"), s.stubs.reflection["v1alpha"], "v1alpha")
        pool = client.pool_for("jobworker.v1.JobService")
        service = DynamicService(s.channel("alice"), pool, "jobworker.v1.JobService")
        limits = pool.FindMessageTypeByName("jobworker.v1.Limits")
        assert [f.name for f in limits.fields][:3] == ["cpu", "cpu_weight", "memory_bytes"]
        # docs/api.md's grpcurl example, as JSON, then one with an env map
        example = json_format.Parse('{"command":"sh","args":["-c","echo hi"],"limits":{"memory_bytes":"134217728"}}', service.request("StartJob"))
        started = service.call("StartJob", example).job
        assert started.limits.memory_bytes == 134217728
        request = json_format.Parse(json.dumps({"command": "sh", "args": ["-c", "echo $GREETING; echo oops >&2"], "env": {"GREETING": "hello"}}), service.request("StartJob"))
        job = service.call("StartJob", request).job
        stream_enum = pool.FindEnumTypeByName("jobworker.v1.Stream")
        out = {"STREAM_STDOUT": b"", "STREAM_STDERR": b""}
        final = None
        follow = service.request("StreamLogs")
        follow.job_id, follow.follow = job.id, True
        for message in service.call("StreamLogs", follow):
            for chunk in message.chunks:
                out[stream_enum.values_by_number[chunk.stream].name] += chunk.data
            if message.HasField("final_status"):
                final = message.final_status
        assert out == {"STREAM_STDOUT": b"hello\n", "STREAM_STDERR": b"oops\n"}, out
        state = pool.FindEnumTypeByName("jobworker.v1.JobState").values_by_number[final.state].name
        assert state == "JOB_STATE_EXITED", state
        get = service.request("GetJob")
        get.job_id = job.id
        got = service.call("GetJob", get).job
        assert json_format.MessageToDict(got, preserving_proto_field_name=True)["state"] == "JOB_STATE_EXITED"
        assert got.log.size_bytes == final.log.size_bytes > 0
        health = DynamicService(s.channel("nobody"), client.pool_for("grpc.health.v1.Health"), "grpc.health.v1.Health")
        listed = health.call("List", health.request("List"))
        assert "jobworker.v1.JobService" in listed.statuses, listed

    s.check("reflection v1 and v1alpha: list_services names every service, for any certificate (no role included)", services)
    s.check("reflection serves the real files: names, imports, and protoc's exact descriptors", real_descriptors)
    s.check("a client built only from reflection starts, queries and streams a job (and lists health)", reflection_only_client)


def main():
    config = json.loads(Path(sys.argv[1]).read_text())
    seed = int(os.environ.get("INTEROP_SEED", random.randrange(1 << 32)))
    print(f"# python {sys.version.split()[0]}, grpcio {grpc.__version__} (C core); seed {seed}", flush=True)
    s = Suite(config)
    try:
        rpcs(s)
        error_codes(s)
        streaming(s, random.Random(seed))
        rbac(s)
        health(s)
        reflection(s)
    finally:
        s.close()
    print(f"{s.passed} passed, {s.failed} failed", flush=True)
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
