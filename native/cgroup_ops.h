// Batched cgroupfs operations. A job's cgroups are created, read and removed in one trip to a
// libuv threadpool thread instead of dozens of synchronous calls on the JavaScript thread (on a
// hybrid host a job has five cgroup directories: ~35 system calls to create, read and remove them).
// One more kind, kCreate, makes a new empty file (O_EXCL, 0640): the Worker's spare log files.
#pragma once

#include <node_api.h>

#include <string>
#include <vector>

namespace jw {

enum class CgroupOpKind { kMkdir, kRmdir, kWrite, kRead, kCreate };

struct CgroupOp {
  CgroupOpKind kind;
  std::string path;
  std::string value;      // kWrite: written with a single write(2), as the kernel parses each on its own
  bool optional = false;  // ENOENT is not a failure: the op is skipped (a file this kernel lacks)
};

struct CgroupOpsOutcome {
  size_t completed = 0;             // ops done; on failure, the index of the failed op
  std::vector<std::string> reads;   // per op: the contents read (kRead only)
  std::vector<bool> skipped;        // per op: an optional op that met ENOENT
  int err = 0;                      // errno of the failed op; 0 when every op succeeded
};

// Runs `ops` in order and stops at the first failure. Any thread.
void run_cgroup_ops(const std::vector<CgroupOp>& ops, CgroupOpsOutcome& out);

// JS thread: { completed, reads: (string|null)[], code?, errno?, message? } for an outcome.
napi_value cgroup_ops_outcome_to_js(napi_env env, const std::vector<CgroupOp>& ops, const CgroupOpsOutcome& out);

}  // namespace jw
