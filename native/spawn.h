// Creating a job's main process: born inside its cgroup, stdio on pipes, exec or a typed failure.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "unique_fd.h"

namespace jw {

struct SpawnRequest {
  // Paths to try in order, as execvp would (the caller resolves the command against the job's PATH).
  std::vector<std::string> exec_candidates;
  std::vector<std::string> argv;
  std::vector<std::string> envp;     // "NAME=value"
  std::string cwd;                   // empty: inherit the daemon's
  int cgroup_fd = -1;                // cgroup v2 directory to be born into; -1: stay in ours
  std::vector<int> join_procs_fds;   // v1 cgroup.procs files the child joins (writes "0") before exec
  long long uid = -1, gid = -1;      // -1: keep
  bool set_groups = false;           // replace supplementary groups with `groups`
  std::vector<gid_t> groups;
  long long nofile_soft = -1;        // RLIMIT_NOFILE soft limit for the job; -1: inherit
  bool force_gated_fork = false;     // tests: take the fallback path even where clone3 works
};

struct SpawnedChild {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd stdout_read;  // non-blocking read ends of the job's stdout and stderr pipes
  UniqueFd stderr_read;
  bool gated_fork = false;  // which path created it (reported for tests and benchmarks)
};

// What failed between clone and exec: the stage and the errno, never a "started" job that never ran.
enum class SpawnStage : int {
  kNone = 0,
  kPipes,      // parent: creating pipes or opening /dev/null
  kClone,      // parent: clone3 / clone
  kCgroup,     // joining a cgroup (v1 cgroup.procs in the child, or the fallback's v2 placement)
  kSession,    // setsid
  kStdio,      // dup2 of stdin/stdout/stderr
  kRlimit,     // setrlimit(RLIMIT_NOFILE)
  kCredentials,// setgroups / setgid / setuid
  kCloseFds,   // close_range
  kChdir,      // chdir(cwd)
  kExec,       // execve of every candidate failed
};

struct SpawnFailure {
  SpawnStage stage;
  int err;                // errno
  int candidate = -1;     // for kExec: index of the candidate whose error is reported
};

const char* spawn_stage_name(SpawnStage stage);

// Throws SpawnFailure. On return the child has exec'd (or is about to, in the fallback: its exec
// result has been read from the error pipe, so it has exec'd too).
SpawnedChild spawn_process(const SpawnRequest& req);

}  // namespace jw
