// One thread per Node environment that watches every job's pidfd and output pipes with epoll,
// moves output into the log files and reaps exits; a second one runs the jobs' exit ops. Events
// reach JavaScript through a single thread-safe function. Job output never passes through the JS
// thread or heap.
#pragma once

#include <node_api.h>
#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fs_ops.h"
#include "job_events.h"
#include "log_writer.h"
#include "spawn.h"
#include "task_thread.h"
#include "unique_fd.h"

namespace jw {

class Job;
class JsListener;

// What epoll hands back: which job and which of its descriptors.
struct EventSource {
  enum Kind { kPidfd, kStdout, kStderr, kWake } kind;
  Job* job;
};

// One spawned process and its capture. Fields are owned by the reactor thread unless marked.
class Job {
 public:
  Job(SpawnedChild child, std::unique_ptr<LogWriter> log);
  ~Job();

  // Any thread. False when the process has already been reaped (so no pid can be hit by mistake).
  // Throws NativeError (stage kSignal) on any other failure.
  bool kill(int signal);
  // SIGKILL and reap, leaving no zombie: for a job nobody will watch any more.
  void kill_and_reap();

  const pid_t pid;
  const bool gated_fork;
  std::unique_ptr<LogWriter> log;
  std::atomic<bool> watch_output{false};          // JS wants "output" events
  std::atomic<bool> output_event_pending{false};  // one queued "output" event at most
  std::atomic<bool> capture_closed{false};        // the log is finished: closeCapture() has nothing to do
  // Filesystem ops run once the process is reaped and its output is on disk (the Worker reads the
  // final stats and removes the cgroup there), on the reactor's settle thread; their outcome goes
  // with the exit event. Set before the job is added, then read-only.
  std::vector<FsOp> exit_ops;

  // Reactor thread.
  EventSource sources[3];
  UniqueFd pipes[2];   // stdout, stderr read ends; reset when they reach EOF
  int pipe_capacity[2] = {0, 0};
  bool grow_pipe[2] = {true, true};  // false once the kernel refused a bigger pipe
  bool reaped = false;
  bool finished = false;

  // JS thread.
  std::unique_ptr<JsListener> listener;

 private:
  friend class Reactor;
  std::mutex pidfd_mutex_;
  UniqueFd pidfd_;  // closed once reaped
  UniqueFd init_status_;  // isolation.pid: how the command itself ended (read once init is reaped)
  // Guarded by the reactor's mutex_: "close" is held back until "exit" is queued.
  bool exit_queued_ = false;
  std::optional<CloseEvent> held_close_;
  int registered_ = 0;  // how many of its fds epoll watches (set by add(), read by an abandon)
};

class Reactor {
 public:
  // Throws NativeError (stage kReactor).
  explicit Reactor(napi_env env);
  ~Reactor();  // stops both threads; kills and reaps jobs still running (env teardown)

  // JS thread. Throws NativeError (stage kWatch): the job is then killed, reaped and forgotten.
  void add(const std::shared_ptr<Job>& job);
  void close_capture(const std::shared_ptr<Job>& job);

 private:
  struct Queued {
    std::shared_ptr<Job> job;
    JobEvent event;
  };

  void run();
  void run_commands();
  void on_pipe(Job* job, int index, uint32_t events);
  void on_exit(Job* job);
  void drain_dry(Job* job, int index);
  void close_pipe(Job* job, int index);
  void finish_if_done(Job* job);
  void abandon(Job* job);
  void request_output_event(Job* job);
  void queue_exit(const std::shared_ptr<Job>& job, ExitEvent exit);
  void queue(const std::shared_ptr<Job>& job, JobEvent event);
  std::shared_ptr<Job> owner(Job* job);
  void wake();
  void flush_events();
  static void call_js(napi_env env, napi_value js_callback, void* context, void* data);
  void dispatch(napi_env env);

  napi_env env_;
  napi_threadsafe_function tsfn_ = nullptr;
  UniqueFd epoll_;
  UniqueFd wake_;
  EventSource wake_source_{EventSource::kWake, nullptr};
  std::thread thread_;
  // Exit ops, which may wait on the kernel, run here rather than on the capture thread.
  std::unique_ptr<TaskThread> settle_;

  std::mutex mutex_;  // guards everything below, and each Job's exit_queued_ and held_close_
  std::unordered_map<Job*, std::shared_ptr<Job>> jobs_;
  std::vector<std::shared_ptr<Job>> close_requests_;
  std::vector<std::shared_ptr<Job>> abandon_requests_;
  bool stopping_ = false;
  std::vector<Queued> events_;
  bool call_pending_ = false;

  // Reactor thread: jobs finished in the current epoll batch, kept alive until the batch is done.
  std::vector<std::shared_ptr<Job>> finished_in_batch_;

  // JS thread.
  size_t live_jobs_ = 0;  // jobs whose close event is not yet delivered; keeps the loop alive
};

}  // namespace jw
