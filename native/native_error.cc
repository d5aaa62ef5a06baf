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
    case Stage::kNamespaces: return "namespaces";
    case Stage::kMount: return "mount";
    case Stage::kSession: return "session";
    case Stage::kStdio: return "stdio";
    case Stage::kRlimit: return "rlimit";
    case Stage::kCredentials: return "credentials";
    case Stage::kCloseFds: return "close-fds";
    case Stage::kChdir: return "chdir";
    case Stage::kExec: return "exec";
    case Stage::kInit: return "init";
    case Stage::kWatch: return "watch";
    case Stage::kFsOps: return "fs-ops";
    case Stage::kExitOps: return "exit-ops";
    case Stage::kReactor: return "reactor";
    case Stage::kSignal: return "signal";
    case Stage::kCapture: return "capture";
    case Stage::kStartedOps: return "started-ops";
  }
  return "unknown";
}

namespace {

// What failed and where, before ": ENOENT (No such file or directory)". The spawn stages keep the
// wording the API has always answered with (docs/api.md: "spawn failed at exec of /x: ENOENT").
std::string what_failed(const NativeError& e) {
  std::string at = e.path.empty() ? "" : " " + e.path;
  std::string op = std::to_string(e.index);
  switch (e.stage) {
    case Stage::kSetup: return "setup op " + op + " failed at" + at;
    case Stage::kLog: return "cannot create the log file" + at;
    case Stage::kPlacement: return "cannot open the cgroup file" + at;
    case Stage::kExec: return "spawn failed at exec" + (e.path.empty() ? "" : " of" + at);
    case Stage::kChdir: return "spawn failed at chdir" + (e.path.empty() ? "" : " to" + at);
    case Stage::kMount: return "spawn failed at mount" + (e.path.empty() ? "" : " on" + at);
    case Stage::kNamespaces:
    case Stage::kCredentials: return std::string("spawn failed at ") + stage_name(e.stage) + (e.path.empty() ? "" : ": " + e.path);
    case Stage::kInit: return "spawn failed at exec of the job's init" + (e.path.empty() ? "" : " " + e.path);
    case Stage::kWatch: return "cannot watch the job's pidfd and pipes (epoll_ctl)";
    case Stage::kFsOps: return "fs op " + op + " failed at" + at;
    case Stage::kExitOps: return "exit op " + op + " failed at" + at;
    case Stage::kStartedOps: return "started op " + op + " failed at" + at;
    case Stage::kReactor: return "cannot start the capture thread";
    case Stage::kSignal: return "cannot signal the process (pidfd_send_signal)";
    case Stage::kCapture: return "capture thread:" + at;
    default: return std::string("spawn failed at ") + stage_name(e.stage) + at;
  }
}

}  // namespace

const char* errno_name(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

std::string describe(const NativeError& error) {
  return what_failed(error) + ": " + errno_name(error.err) + " (" + strerror(error.err) + ")";
}

void fatal(const NativeError& error) {
  std::fprintf(stderr, "jobworker native core, fatal: %s\n", describe(error).c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace jw
