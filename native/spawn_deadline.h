// A deadline for the part of a spawn that waits on its child: the vfork (until the child execs or
// exits) and, with a PID namespace, init's report that the command exec'd. Those waits have no
// timeout of their own, and a process of the job's user can SIGSTOP the child after its uid
// switch: the spawning thread (a threadpool thread, which the daemon's file system calls share)
// would wait for ever. Past the deadline one watchdog thread, shared by every spawn of the process,
// SIGKILLs the child through its pidfd; the spawn then fails with ETIMEDOUT.
#pragma once

#include <chrono>
#include <cstdint>

namespace jw {

class SpawnDeadline {
 public:
  // `pidfd` is read by the watchdog when the deadline passes: for a clone3 with CLONE_PIDFD the
  // kernel writes it there before the child runs. -1 (not yet written) is skipped. It must stay
  // open until this object is destroyed.
  SpawnDeadline(const volatile int* pidfd, std::chrono::milliseconds limit);
  ~SpawnDeadline();  // finish(), if not done
  SpawnDeadline(const SpawnDeadline&) = delete;
  SpawnDeadline& operator=(const SpawnDeadline&) = delete;

  // Ends the watch (no SIGKILL can come after it) and says whether the watchdog killed the child.
  // Call once the wait has ended.
  bool finish();

 private:
  friend class SpawnWatchdog;
  const volatile int* pidfd_;
  std::chrono::steady_clock::time_point deadline_;
  bool fired_ = false;  // under the watchdog's mutex
  bool finished_ = false;
  bool fired_at_finish_ = false;
  SpawnDeadline* next_ = nullptr;
};

}  // namespace jw
