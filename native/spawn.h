// Creating a job's main process: born inside its cgroup, stdio on pipes, exec or a typed failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "isolation.h"
#include "native_error.h"
#include "unique_fd.h"

namespace jw {

struct SpawnRequest {
  // Paths to try in order, as execvp would (the caller resolves the command against the job's PATH).
  std::vector<std::string> exec_candidates;
  std::vector<std::string> argv;
  std::vector<std::string> envp;     // "NAME=value"
  std::string cwd;                   // empty: inherit the daemon's (isolated: "/")
  int cgroup_fd = -1;                // cgroup v2 directory to be born into; -1: stay in ours
  std::vector<int> join_tasks_fds;   // v1 `tasks` files the child joins (writes "0") before exec
  long long uid = -1, gid = -1;      // -1: keep
  bool set_groups = false;           // replace supplementary groups with `groups`
  std::vector<gid_t> groups;
  long long nofile_soft = -1;        // RLIMIT_NOFILE soft limit for the job; -1: inherit
  std::optional<IsolationRequest> isolation;  // namespaces, mounts, no_new_privs (isolation.h)
  bool force_gated_fork = false;     // tests: take the fallback path even where clone3 works
  // How long the spawn waits for its child to exec (see spawn_deadline.h) before it kills it and
  // fails with ETIMEDOUT.
  std::chrono::milliseconds start_timeout{10'000};
  // Tests: the child waits before its exec until killed, as a SIGSTOP from the job's user holds it.
  bool hold_before_exec = false;
};

struct SpawnedChild {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd stdout_read;  // non-blocking read ends of the job's stdout and stderr pipes
  UniqueFd stderr_read;
  // With isolation.pid: the read end of jobworker-init's status pipe (non-blocking), which says how
  // the command itself ended (init_protocol.h). pid and pidfd are init's.
  UniqueFd init_status;
  bool gated_fork = false;  // which path created it (reported for tests and benchmarks)
};

// On return the child has exec'd (in the fallback: its exec result has been read from the error
// pipe, so it has exec'd too). Throws NativeError (stage kPipes..kExec) if it could not: then no
// process is left behind, and nothing of the job ever ran.
SpawnedChild spawn_process(const SpawnRequest& req);

// SIGKILL through the child's pidfd, then reaps it (with isolation.pid, init's end takes the whole
// namespace with it). For a spawn that succeeded but must not go on.
void kill_and_reap(SpawnedChild& child);

}  // namespace jw
