// One thread per Node environment that watches every job's pidfd and output pipes with epoll,
// moves output into the log files, reaps exits, and hands events to JavaScript through a single
// thread-safe function. Job output never passes through the JS thread or heap.
#pragma once

#include <node_api.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs_ops.h"
#include "log_writer.h"
#include "spawn.h"
#include "unique_fd.h"

namespace jw {

struct ExitStatus {
  int code = -1;    // exit code, or -1 when killed by a signal
  int signal = 0;   // terminating signal, or 0
  bool core_dumped = false;
  // No max RSS: under CLONE_VM the child's pre-exec high-water mark is the daemon's, and exec
  // carries it into ru_maxrss. The cgroup's memory peak is the honest figure.
  uint64_t user_cpu_us = 0, system_cpu_us = 0;
  uint64_t time_ns = 0;  // when it was reaped
  uint64_t log_bytes = 0;  // committed log size once the pipes were read dry after the exit
};

class Job;

// What epoll hands back: which job and which of its descriptors.
struct EventSource {
  enum Kind { kPidfd, kStdout, kStderr, kWake } kind;
  Job* job;
};

// One spawned process and its capture. Fields are owned by the reactor thread unless marked.
class Job {
 public:
  Job(SpawnedChild child, std::unique_ptr<LogWriter> log);

  // Any thread. False when the process has already been reaped (so no pid can be hit by mistake).
  // Throws int errno on any other failure.
  bool kill(int signal);
  // Only for a job that could not be handed to the reactor: SIGKILL and reap, leaving no zombie.
  void kill_and_reap();

  const pid_t pid;
  const bool gated_fork;
  std::unique_ptr<LogWriter> log;
  std::atomic<bool> watch_output{false};          // JS wants "output" events
  std::atomic<bool> output_event_pending{false};  // one queued "output" event at most
  std::atomic<bool> capture_closed{false};        // the log is finished: closeCapture() has nothing to do
  ExitStatus status;                               // written before the exit event is queued
  // Filesystem ops run on the reactor thread once the process is reaped and its output is on disk
  // (the Worker reads the final stats and removes the cgroup there); their outcome goes with the
  // exit event. Set before the job is added, then reactor thread only.
  std::vector<FsOp> exit_ops;
  FsOpsOutcome exit_ops_outcome;

  // Reactor thread.
  EventSource sources[3];
  UniqueFd pipes[2];   // stdout, stderr read ends; reset when they reach EOF
  int pipe_capacity[2] = {0, 0};
  bool reaped = false;
  bool finished = false;

  // JS thread.
  napi_ref listener = nullptr;

 private:
  friend class Reactor;
  std::mutex pidfd_mutex_;
  UniqueFd pidfd_;  // closed once reaped
};

class Reactor {
 public:
  explicit Reactor(napi_env env);
  ~Reactor();  // stops and joins the thread; kills and reaps jobs still running (env teardown)

  // JS thread.
  void add(const std::shared_ptr<Job>& job);
  void close_capture(const std::shared_ptr<Job>& job);
  void request_output_event(Job* job);  // the reactor side of "output" coalescing (reactor thread)

 private:
  enum class EventType { kOutput, kExit, kClose };
  struct Event {
    std::shared_ptr<Job> job;
    EventType type;
  };

  void run();
  void run_commands();
  void on_pipe(Job* job, int index, uint32_t events);
  void on_exit(Job* job);
  void drain_dry(Job* job, int index);
  void close_pipe(Job* job, int index);
  void finish_if_done(Job* job);
  void enqueue(const std::shared_ptr<Job>& job, EventType type);
  std::shared_ptr<Job> owner(Job* job);
  void flush_events();
  static void call_js(napi_env env, napi_value js_callback, void* context, void* data);
  void dispatch(napi_env env);

  napi_env env_;
  napi_threadsafe_function tsfn_ = nullptr;
  UniqueFd epoll_;
  UniqueFd wake_;
  EventSource wake_source_{EventSource::kWake, nullptr};
  std::thread thread_;

  std::mutex mutex_;  // guards everything below
  std::unordered_map<Job*, std::shared_ptr<Job>> jobs_;
  std::vector<std::shared_ptr<Job>> close_requests_;
  bool stopping_ = false;
  std::vector<Event> events_;
  bool call_pending_ = false;

  // Reactor thread: jobs finished in the current epoll batch, kept alive until the batch is done.
  std::vector<std::shared_ptr<Job>> finished_in_batch_;

  // JS thread.
  size_t live_jobs_ = 0;  // jobs whose close event is not yet delivered; keeps the loop alive
};

}  // namespace jw
