#include "reactor.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "log_format.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace jw {
namespace {

// A job that fills its pipe gets a bigger one (up to /proc/sys/fs/pipe-max-size's usual 1 MiB):
// fewer wake-ups for chatty jobs, while quiet jobs keep the kernel's small default.
constexpr int kLargePipeSize = 1 << 20;

void epoll_add(int epoll_fd, int fd, EventSource* source) {
  struct epoll_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = source;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) throw errno;
}

}  // namespace

Job::Job(SpawnedChild child, std::unique_ptr<LogWriter> log_writer)
    : pid(child.pid), gated_fork(child.gated_fork), log(std::move(log_writer)) {
  sources[0] = {EventSource::kPidfd, this};
  sources[1] = {EventSource::kStdout, this};
  sources[2] = {EventSource::kStderr, this};
  pipes[0] = std::move(child.stdout_read);
  pipes[1] = std::move(child.stderr_read);
  pidfd_ = std::move(child.pidfd);
  for (int i = 0; i < 2; i++) pipe_capacity[i] = fcntl(pipes[i].get(), F_GETPIPE_SZ);
}

bool Job::kill(int signal) {
  std::lock_guard<std::mutex> lock(pidfd_mutex_);
  if (!pidfd_.valid()) return false;
  if (syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;  // exited, not yet reaped
  throw errno;
}

void Job::kill_and_reap() {
  std::lock_guard<std::mutex> lock(pidfd_mutex_);
  if (!pidfd_.valid()) return;
  syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  siginfo_t info;
  while (syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &info, WEXITED, nullptr) < 0 && errno == EINTR) {
  }
  pidfd_.reset();
}

Reactor::Reactor(napi_env env) : env_(env) {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) throw errno;
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) throw errno;
  epoll_add(epoll_.get(), wake_.get(), &wake_source_);

  napi_value name;
  napi_create_string_utf8(env, "jobworker.reactor", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, call_js,
                                      &tsfn_) != napi_ok)
    throw EINVAL;
  // Idle until a job exists: an embedding program with no jobs must be able to exit.
  napi_unref_threadsafe_function(env, tsfn_);
  thread_ = std::thread([this] { run(); });
}

Reactor::~Reactor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  uint64_t one = 1;
  if (write(wake_.get(), &one, sizeof one) < 0) {
  }
  if (thread_.joinable()) thread_.join();
  // The environment (a worker thread, usually) is going away and nobody will capture or reap these
  // jobs any more: kill and reap them rather than leave zombies and unread pipes behind.
  for (auto& entry : jobs_) {
    Job& job = *entry.second;
    if (job.listener != nullptr) napi_delete_reference(env_, job.listener);
    job.listener = nullptr;
    if (!job.reaped) job.kill_and_reap();
    job.log->finish();
  }
  for (auto& event : events_) {
    if (event.type == EventType::kClose && event.job->listener != nullptr) {
      napi_delete_reference(env_, event.job->listener);
      event.job->listener = nullptr;
    }
  }
  napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
}

void Reactor::add(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_[job.get()] = job;
  }
  // Registered after it is in the map: the reactor may see its events at once.
  int fds[3] = {job->pidfd_.get(), job->pipes[0].get(), job->pipes[1].get()};
  for (int i = 0; i < 3; i++) {
    try {
      epoll_add(epoll_.get(), fds[i], &job->sources[i]);
    } catch (int err) {
      for (int j = 0; j < i; j++) epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fds[j], nullptr);
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.erase(job.get());
      throw;
    }
  }
  if (live_jobs_++ == 0) napi_ref_threadsafe_function(env_, tsfn_);
}

void Reactor::close_capture(const std::shared_ptr<Job>& job) {
  if (job->capture_closed.load()) return;  // the usual case after an exit: no need to wake the thread
  {
    std::lock_guard<std::mutex> lock(mutex_);
    close_requests_.push_back(job);
  }
  uint64_t one = 1;
  if (write(wake_.get(), &one, sizeof one) < 0) {
  }
}

void Reactor::run() {
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // cannot happen with a valid epoll fd; nothing sensible to do but stop
    }
    for (int i = 0; i < n; i++) {
      EventSource* source = static_cast<EventSource*>(events[i].data.ptr);
      if (source->kind == EventSource::kWake) {
        uint64_t count;
        if (read(wake_.get(), &count, sizeof count) < 0) {
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (stopping_) return;
        }
        run_commands();
        continue;
      }
      Job* job = source->job;
      if (job->finished) continue;
      if (source->kind == EventSource::kPidfd) {
        on_exit(job);
      } else {
        on_pipe(job, source->kind == EventSource::kStdout ? 0 : 1, events[i].events);
      }
    }
    flush_events();
    finished_in_batch_.clear();
  }
}

void Reactor::run_commands() {
  std::vector<std::shared_ptr<Job>> requests;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    requests.swap(close_requests_);
  }
  for (auto& job : requests) {
    if (job->finished) continue;
    for (int i = 0; i < 2; i++) {
      if (!job->pipes[i].valid()) continue;
      drain_dry(job.get(), i);
      close_pipe(job.get(), i);
    }
    finish_if_done(job.get());
  }
}

void Reactor::on_pipe(Job* job, int index, uint32_t events) {
  int fd = job->pipes[index].get();
  if (fd < 0) return;  // closed earlier in this batch
  int available = 0;
  if (ioctl(fd, FIONREAD, &available) < 0) available = 0;
  if (available > 0) {
    if (available >= job->pipe_capacity[index] && job->pipe_capacity[index] < kLargePipeSize) {
      int grown = fcntl(fd, F_SETPIPE_SZ, kLargePipeSize);
      if (grown > 0) job->pipe_capacity[index] = grown;
    }
    job->log->append_from_pipe(fd, index == 0 ? kStdout : kStderr, static_cast<size_t>(available));
    request_output_event(job);
    return;
  }
  if (events & (EPOLLHUP | EPOLLERR)) {
    close_pipe(job, index);
    finish_if_done(job);
  }
}

// Reads what is in the pipe now, and no more: writers that outlived the main process cannot keep
// this going forever.
void Reactor::drain_dry(Job* job, int index) {
  int fd = job->pipes[index].get();
  int remaining = 0;
  if (ioctl(fd, FIONREAD, &remaining) < 0) return;
  while (remaining > 0) {
    int available = 0;
    if (ioctl(fd, FIONREAD, &available) < 0 || available == 0) break;
    size_t take = static_cast<size_t>(available < remaining ? available : remaining);
    remaining -= static_cast<int>(job->log->append_from_pipe(fd, index == 0 ? kStdout : kStderr, take));
  }
  request_output_event(job);
}

void Reactor::close_pipe(Job* job, int index) {
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, job->pipes[index].get(), nullptr);
  job->pipes[index].reset();
}

void Reactor::on_exit(Job* job) {
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  struct rusage usage;
  std::memset(&usage, 0, sizeof usage);
  int pidfd = job->pidfd_.get();
  long rc;
  do rc = syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | WNOHANG, &usage);
  while (rc < 0 && errno == EINTR);
  if (rc == 0 && info.si_pid == 0) return;  // readable but not yet waitable: wait for the next event

  ExitStatus& status = job->status;
  if (rc < 0) {
    status.code = -1;  // ECHILD: someone reaped it behind our back; the status is unknowable
  } else if (info.si_code == CLD_EXITED) {
    status.code = info.si_status;
  } else {
    status.signal = info.si_status;
    status.core_dumped = info.si_code == CLD_DUMPED;
  }
  status.user_cpu_us = static_cast<uint64_t>(usage.ru_utime.tv_sec) * 1000000 + usage.ru_utime.tv_usec;
  status.system_cpu_us = static_cast<uint64_t>(usage.ru_stime.tv_sec) * 1000000 + usage.ru_stime.tv_usec;
  status.time_ns = realtime_ns();

  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, pidfd, nullptr);
  {
    std::lock_guard<std::mutex> lock(job->pidfd_mutex_);
    job->pidfd_.reset();
  }
  job->reaped = true;

  // All the main process wrote is in the pipes now; put it on disk before saying "exited".
  for (int i = 0; i < 2; i++) {
    if (job->pipes[i].valid()) drain_dry(job, i);
  }
  status.log_bytes = job->log->committed();
  if (!job->exit_ops.empty()) run_fs_ops(job->exit_ops, job->exit_ops_outcome);
  enqueue(owner(job), EventType::kExit);
  finish_if_done(job);
}

void Reactor::finish_if_done(Job* job) {
  if (job->finished || !job->reaped || job->pipes[0].valid() || job->pipes[1].valid()) return;
  job->finished = true;
  job->log->finish();
  job->capture_closed.store(true);
  std::shared_ptr<Job> owned;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(job);
    owned = std::move(it->second);
    jobs_.erase(it);
  }
  enqueue(owned, EventType::kClose);
  finished_in_batch_.push_back(std::move(owned));
}

// Store-then-load on both sides, sequentially consistent: the capture thread commits then reads the
// watch flag; JS sets the flag then reads the committed size. At least one of them sees the other's
// store, so a follower that starts watching never misses growth (no lost wake-up).
void Reactor::request_output_event(Job* job) {
  if (!job->watch_output.load()) return;
  if (job->output_event_pending.exchange(true)) return;
  enqueue(owner(job), EventType::kOutput);
}

std::shared_ptr<Job> Reactor::owner(Job* job) {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.at(job);
}

void Reactor::enqueue(const std::shared_ptr<Job>& job, EventType type) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(Event{job, type});
}

void Reactor::flush_events() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.empty() || call_pending_) return;
    call_pending_ = true;
  }
  napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking);
}

void Reactor::call_js(napi_env env, napi_value, void* context, void*) {
  if (env == nullptr) return;  // the environment is going away
  static_cast<Reactor*>(context)->dispatch(env);
}

namespace {

void set_number(napi_env env, napi_value object, const char* key, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, key, v);
}

void set_value(napi_env env, napi_value object, const char* key, napi_value value) {
  napi_set_named_property(env, object, key, value);
}

}  // namespace

void Reactor::dispatch(napi_env env) {
  std::vector<Event> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(events_);
    call_pending_ = false;
  }
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value undefined, null_value;
  napi_get_undefined(env, &undefined);
  napi_get_null(env, &null_value);
  for (auto& event : batch) {
    Job* job = event.job.get();
    if (job->listener == nullptr) continue;
    napi_handle_scope inner;
    napi_open_handle_scope(env, &inner);
    napi_value listener;
    napi_get_reference_value(env, job->listener, &listener);
    napi_value args[2];
    napi_value info;
    napi_create_object(env, &info);
    const char* type = "output";
    if (event.type == EventType::kOutput) {
      job->output_event_pending.store(false);  // seq_cst, before reading the size
      set_number(env, info, "logBytes", static_cast<double>(job->log->committed()));
    } else if (event.type == EventType::kExit) {
      type = "exit";
      const ExitStatus& s = job->status;
      if (s.signal == 0) set_number(env, info, "code", s.code); else set_value(env, info, "code", null_value);
      if (s.signal != 0) set_number(env, info, "signal", s.signal); else set_value(env, info, "signal", null_value);
      napi_value core;
      napi_get_boolean(env, s.core_dumped, &core);
      set_value(env, info, "coreDumped", core);
      set_number(env, info, "userCpuMicros", static_cast<double>(s.user_cpu_us));
      set_number(env, info, "systemCpuMicros", static_cast<double>(s.system_cpu_us));
      set_number(env, info, "exitedAtMs", static_cast<double>(s.time_ns) / 1e6);
      set_number(env, info, "logBytes", static_cast<double>(s.log_bytes));
      if (!job->exit_ops.empty()) set_value(env, info, "exitOps", fs_ops_outcome_to_js(env, job->exit_ops, job->exit_ops_outcome));
    } else {
      type = "close";
      set_number(env, info, "logBytes", static_cast<double>(job->log->committed()));
      set_number(env, info, "droppedBytes", static_cast<double>(job->log->dropped_bytes()));
      napi_value truncated;
      napi_get_boolean(env, job->log->truncated(), &truncated);
      set_value(env, info, "truncated", truncated);
      int err = job->log->first_error();
      if (err != 0) {
        const char* name = strerrorname_np(err);
        napi_value code;
        napi_create_string_utf8(env, name ? name : "EIO", NAPI_AUTO_LENGTH, &code);
        set_value(env, info, "writeError", code);
      } else {
        set_value(env, info, "writeError", null_value);
      }
    }
    napi_create_string_utf8(env, type, NAPI_AUTO_LENGTH, &args[0]);
    args[1] = info;
    if (event.type == EventType::kClose) {
      napi_delete_reference(env, job->listener);
      job->listener = nullptr;
      if (--live_jobs_ == 0) napi_unref_threadsafe_function(env, tsfn_);
    }
    napi_value result;
    if (napi_call_function(env, undefined, listener, 2, args, &result) == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);  // an uncaught exception, like any event listener's
    }
    napi_close_handle_scope(env, inner);
  }
  napi_close_handle_scope(env, scope);
}

}  // namespace jw
