#include "native_error.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace jw {

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kNone: return "none";
    case Stage::kSetup: return "setup";
    case Stage::kLog: return "log";
    case Stage::kPlacement: return "placement";
    case Stage::kPipes: return "pipes";
    case Stage::kClone: return "clone";
    case Stage::kCgroup: return "cgroup";
    case Stage::kSession: return "session";
    case Stage::kStdio: return "stdio";
    case Stage::kRlimit: return "rlimit";
    case Stage::kCredentials: return "credentials";
    case Stage::kCloseFds: return "close-fds";
    case Stage::kChdir: return "chdir";
    case Stage::kExec: return "exec";
    case Stage::kWatch: return "watch";
    case Stage::kFsOps: return "fs-ops";
    case Stage::kExitOps: return "exit-ops";
    case Stage::kReactor: return "reactor";
    case Stage::kSignal: return "signal";
    case Stage::kCapture: return "capture";
  }
  return "unknown";
}

namespace {

// What was being done, worded to follow "cannot ".
const char* action(Stage stage) {
  switch (stage) {
    case Stage::kSetup: return "run setup op";
    case Stage::kLog: return "create the log file";
    case Stage::kPlacement: return "open the cgroup file";
    case Stage::kPipes: return "create the job's pipes";
    case Stage::kClone: return "clone the job's process";
    case Stage::kCgroup: return "place the process in its cgroup";
    case Stage::kSession: return "start a session (setsid)";
    case Stage::kStdio: return "set up stdin, stdout and stderr";
    case Stage::kRlimit: return "set RLIMIT_NOFILE";
    case Stage::kCredentials: return "switch to the job's uid, gid and groups";
    case Stage::kCloseFds: return "mark the daemon's fds close-on-exec";
    case Stage::kChdir: return "chdir to";
    case Stage::kExec: return "exec";
    case Stage::kWatch: return "watch the job's pidfd and pipes (epoll_ctl)";
    case Stage::kFsOps: return "run fs op";
    case Stage::kExitOps: return "run exit op";
    case Stage::kReactor: return "start the capture thread";
    case Stage::kSignal: return "signal the process (pidfd_send_signal)";
    case Stage::kCapture: return "capture";
    case Stage::kNone: break;
  }
  return "do it";
}

}  // namespace

const char* errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

std::string describe(const NativeError& error) {
  std::string text = std::string("cannot ") + action(error.stage);
  bool op = error.stage == Stage::kSetup || error.stage == Stage::kFsOps || error.stage == Stage::kExitOps;
  if (op && error.index >= 0) text += " " + std::to_string(error.index) + " on";
  if (!error.path.empty()) text += " " + error.path;
  text += std::string(": ") + errno_name(error.err) + " (" + strerror(error.err) + ")";
  return text;
}

void fatal(const NativeError& error) {
  std::fprintf(stderr, "jobworker native core, fatal: %s\n", describe(error).c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace jw
