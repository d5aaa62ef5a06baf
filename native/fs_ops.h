// Batched filesystem operations: mkdir, rmdir, single-write(2) writes, whole-file reads, creating
// empty files and private directories, run in order off the JavaScript thread. The Worker creates, reads and removes a job's
// cgroups with them in one trip instead of dozens of synchronous calls (on a hybrid host a job has
// five cgroup directories: ~35 system calls), makes its spare log files (kCreate) the same way, and
// a job's scratch directory (kMkdirPrivate) in the same trip as its cgroups and its spawn.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "native_error.h"

namespace jw {

enum class FsOpKind { kMkdir, kRmdir, kWrite, kRead, kCreate, kMkdirPrivate };

struct FsOp {
  FsOpKind kind;
  std::string path;
  std::string value;      // kWrite: written with a single write(2), as the kernel parses each on its own
  uid_t uid = 0;          // kMkdirPrivate: the directory's owner (mode 0700)
  gid_t gid = 0;
  bool optional = false;  // ENOENT is not a failure: the op is skipped (a file this kernel lacks)
};

struct FsOpsOutcome {
  size_t completed = 0;                           // ops done; on failure, the index of the failed op
  std::vector<std::optional<std::string>> reads;  // per op: what a kRead that ran read
  std::vector<bool> skipped;                      // per op: an optional op that met ENOENT
  std::optional<NativeError> error;               // the failed op: index, path, errno
};

// Runs `ops` in order and stops at the first failure, reported with `stage` (kSetup, kFsOps or
// kExitOps). Any thread.
FsOpsOutcome run_fs_ops(const std::vector<FsOp>& ops, Stage stage);

}  // namespace jw
