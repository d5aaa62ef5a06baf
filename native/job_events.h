// What the capture thread reports about a job, as plain data. js_values.cc turns each into the JS
// value the job's listener gets; nothing here knows about JavaScript.
#pragma once

#include <cstdint>
#include <optional>
#include <variant>

#include "fs_ops.h"

namespace jw {

struct ExitStatus {
  int code = -1;    // exit code, or -1 when killed by a signal
  int signal = 0;   // terminating signal, or 0
  bool core_dumped = false;
  // No max RSS: under CLONE_VM the child's pre-exec high-water mark is the daemon's, and exec
  // carries it into ru_maxrss. The cgroup's memory peak is the honest figure.
  uint64_t user_cpu_us = 0, system_cpu_us = 0;
  uint64_t time_ns = 0;    // when it was reaped
  uint64_t log_bytes = 0;  // committed log size once the pipes were read dry after the exit
};

// The log grew (coalesced: one pending at a time, and only while JavaScript watches).
struct OutputEvent {
  uint64_t log_bytes = 0;  // the committed size, read when the event is delivered
};

// The process exited, everything it wrote is in the log, and its exit ops (if any) have run.
struct ExitEvent {
  ExitStatus status;
  std::optional<FsOpsOutcome> exit_ops;
};

// Capture ended (both pipes at EOF, or closed on request); always after the exit event.
struct CloseEvent {
  uint64_t log_bytes = 0;
  uint64_t dropped_bytes = 0;
  bool truncated = false;
  int write_error = 0;  // errno of the first failed log write, 0 if none
};

using JobEvent = std::variant<OutputEvent, ExitEvent, CloseEvent>;

}  // namespace jw
