// The one error of the native core, as crun reports its own: what was being done (the stage), the
// errno, and where (a path, and an index into the list the caller gave). Spawns, filesystem ops and
// the capture thread all fail with it; js_values.cc turns it into the JS error src/native/ types.
#pragma once

#include <string>
#include <utility>

namespace jw {

// Numbered for the child of a spawn, which records its stage as an int in memory it shares with
// the parent (it may not allocate). Names in stage_name(); keep src/native/native-error.ts in step.
enum class Stage : int {
  kNone = 0,
  // A spawn, in the order its steps run.
  kSetup,        // the spawn's setupOps: index = the op, path = its path
  kLog,          // creating the log file: path
  kPlacement,    // opening the cgroup placement files: path
  kPipes,        // parent: creating pipes or opening /dev/null
  kClone,        // parent: clone3 / clone
  kCgroup,       // joining a cgroup (v1 cgroup.procs in the child, or the fallback's v2 placement)
  kNamespaces,   // isolation: the cgroup namespace, the hostname, the loopback interface
  kMount,        // isolation: a step of the mount namespace's set-up: path = the mount point
  kSession,      // setsid
  kStdio,        // dup2 of stdin/stdout/stderr
  kRlimit,       // setrlimit(RLIMIT_NOFILE)
  kCredentials,  // setgroups / setgid / setuid
  kCloseFds,     // close_range
  kChdir,        // chdir: path = the working directory
  kExec,         // execve of every candidate failed: path = the candidate reported, index = its place
  kInit,         // isolation.pid: exec of jobworker-init (PID 1 of the job's namespace): path = it
  kWatch,        // handing the job's pidfd and pipes to the capture thread (epoll_ctl)
  // Filesystem ops outside a spawn's setup: index = the op, path = its path.
  kFsOps,        // an fsOps() batch
  kExitOps,      // a spawn's exitOps, run once the process has exited
  // The capture thread.
  kReactor,      // starting it (epoll, eventfd, thread-safe function, threads): no path
  kSignal,       // pidfd_send_signal
  kCapture,      // its own descriptors (epoll_wait, the wake eventfd, a job's pipe): fatal, see
                 // fatal(); path says which call failed
  // A spawn again: its startedOps, run once the process has exec'd (it is then killed): index = the op.
  kStartedOps,
};

struct NativeError {
  NativeError(Stage stage_, int err_, std::string path_ = {}, int index_ = -1)
      : stage(stage_), err(err_), path(std::move(path_)), index(index_) {}

  Stage stage;
  int err;           // errno
  std::string path;  // empty when the stage has none
  int index;         // the op, or the exec candidate; -1 when the stage has none
};

const char* stage_name(Stage stage);

// "spawn failed at exec of /bin/x: ENOENT (No such file or directory)": the message every
// NativeError carries.
std::string describe(const NativeError& error);

// errno's name (ENOENT), or "EUNKNOWN" for a number glibc has no name for.
const char* errno_name(int err);

// For failures that only a bug can cause (EBADF, EFAULT, EINVAL on a descriptor the addon owns),
// where going on would be worse than stopping: a capture thread that cannot wait for events would
// leave every job unreaped, silently. Prints the error and aborts, as libuv does for its own epoll
// and async descriptors (src/unix/linux.c, src/unix/async.c).
[[noreturn]] void fatal(const NativeError& error);

}  // namespace jw
