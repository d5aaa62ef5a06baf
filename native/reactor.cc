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

#include "init_protocol.h"
#include "js_values.h"
#include "log_format.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace jw {
namespace {

// A job that fills its pipe gets a bigger one (up to /proc/sys/fs/pipe-max-size's usual 1 MiB):
// fewer wake-ups for chatty jobs, while quiet jobs keep the kernel's small default.
constexpr int kLargePipeSize = 1 << 20;

int epoll_add(int epoll_fd, int fd, EventSource* source) {
  struct epoll_event ev;
  std::memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = source;
  return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
}

// Before a watched fd is closed. This cannot fail for an fd that is registered (only a bug could
// make it), and it must not: a copy of the fd in a child that has not exec'd yet would keep the
// registration alive, and epoll would go on reporting a Job that is gone.
void epoll_remove(int epoll_fd, int fd, const char* what) {
  if (epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr) < 0) fatal(NativeError{Stage::kCapture, errno, what});
}

// Bytes waiting in a pipe. FIONREAD on a pipe fails only for a bad fd or address: a bug.
int pipe_bytes(int fd) {
  int available = 0;
  if (ioctl(fd, FIONREAD, &available) < 0) fatal(NativeError{Stage::kCapture, errno, "FIONREAD on a job's pipe"});
  return available;
}

// The exit status to report from a waitid result (si_code, si_status).
void set_status(ExitStatus& status, int how, int value) {
  if (how == CLD_EXITED) {
    status.code = value;
  } else {
    status.signal = value;
    status.core_dumped = how == CLD_DUMPED;
  }
}

// With a PID namespace the reaped process is jobworker-init, which cannot die by the command's
// signal: it writes the command's status on its pipe just before it exits. No message means init
// itself was killed (SIGKILL from stop, or an OOM kill of the whole group) and its own status is
// the job's.
bool read_init_status(int fd, ExitStatus& status) {
  jw_init_status message;
  ssize_t n;
  do n = read(fd, &message, sizeof message);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof message) || message.magic != JW_INIT_STATUS_MAGIC) return false;
  bool exited = message.how == CLD_EXITED && message.value >= 0 && message.value <= 255;
  bool killed = (message.how == CLD_KILLED || message.how == CLD_DUMPED) && message.value > 0 && message.value < 65;
  if (!exited && !killed) return false;
  set_status(status, message.how, message.value);
  return true;
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
  init_status_ = std::move(child.init_status);
  // F_GETPIPE_SZ cannot fail on a pipe; were it to, 0 only means the pipe is grown at its first fill.
  for (int i = 0; i < 2; i++) pipe_capacity[i] = fcntl(pipes[i].get(), F_GETPIPE_SZ);
}

Job::~Job() = default;  // here, where JsListener is complete

bool Job::kill(int signal) {
  std::lock_guard<std::mutex> lock(pidfd_mutex_);
  if (!pidfd_.valid()) return false;
  if (syscall(SYS_pidfd_send_signal, pidfd_.get(), signal, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;  // exited, not yet reaped
  throw NativeError{Stage::kSignal, errno};
}

void Job::kill_and_reap() {
  std::lock_guard<std::mutex> lock(pidfd_mutex_);
  if (!pidfd_.valid()) return;
  // ESRCH (it has exited already) is the only failure, and the wait below reaps it either way.
  syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  siginfo_t info;
  while (syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &info, WEXITED, nullptr) < 0 && errno == EINTR) {
  }
  pidfd_.reset();
}

Reactor::Reactor(napi_env env) : env_(env) {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) throw NativeError{Stage::kReactor, errno};
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) throw NativeError{Stage::kReactor, errno};
  if (int err = epoll_add(epoll_.get(), wake_.get(), &wake_source_)) throw NativeError{Stage::kReactor, err};
  settle_ = std::make_unique<TaskThread>();

  // With valid arguments these fail only when out of memory.
  napi_value name;
  if (napi_create_string_utf8(env, "jobworker.reactor", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, this, call_js, &tsfn_) != napi_ok)
    throw NativeError{Stage::kReactor, ENOMEM};
  // Idle until a job exists: an embedding program with no jobs must be able to exit.
  napi_unref_threadsafe_function(env, tsfn_);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& error) {
    napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
    throw NativeError{Stage::kReactor, error.code().value()};
  }
}

Reactor::~Reactor() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake();
  thread_.join();
  // Exit ops already handed over still run (they remove the jobs' cgroups); their events queue up.
  settle_.reset();
  // The environment (a worker thread, usually) is going away and nobody will capture or reap these
  // jobs any more: kill and reap them rather than leave zombies and unread pipes behind.
  for (auto& entry : jobs_) {
    Job& job = *entry.second;
    job.listener.reset();
    if (!job.reaped) job.kill_and_reap();
    job.log->finish();
  }
  for (auto& queued : events_) queued.job->listener.reset();
  napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
}

void Reactor::add(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_[job.get()] = job;
  }
  // Registered after it is in the map: the reactor may see its events at once. The pidfd last:
  // until it is watched the capture thread can only read the pipes, so a failure here cannot race
  // with an exit.
  const int fds[3] = {job->pipes[0].get(), job->pipes[1].get(), job->pidfd_.get()};
  EventSource* sources[3] = {&job->sources[1], &job->sources[2], &job->sources[0]};
  for (int i = 0; i < 3; i++) {
    if (int err = epoll_add(epoll_.get(), fds[i], sources[i])) {
      // The capture thread may be reading its pipes right now: it undoes this itself.
      {
        std::lock_guard<std::mutex> lock(mutex_);
        job->registered_ = i;
        abandon_requests_.push_back(job);
      }
      wake();
      throw NativeError{Stage::kWatch, err};
    }
  }
  job->registered_ = 3;
  if (live_jobs_++ == 0) napi_ref_threadsafe_function(env_, tsfn_);
}

void Reactor::close_capture(const std::shared_ptr<Job>& job) {
  if (job->capture_closed.load()) return;  // the usual case after an exit: no need to wake the thread
  {
    std::lock_guard<std::mutex> lock(mutex_);
    close_requests_.push_back(job);
  }
  wake();
}

// An eventfd write fails only with EAGAIN, when the counter is saturated, i.e. a wake-up is pending
// anyway; anything else is a bug (libuv's uv__async_send aborts there too).
void Reactor::wake() {
  uint64_t one = 1;
  while (write(wake_.get(), &one, sizeof one) < 0) {
    if (errno == EAGAIN) return;
    if (errno != EINTR) fatal(NativeError{Stage::kCapture, errno, "write to the wake eventfd"});
  }
}

void Reactor::run() {
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epoll_.get(), events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      fatal(NativeError{Stage::kCapture, errno, "epoll_wait"});  // a bad epoll fd: nothing could be captured any more
    }
    for (int i = 0; i < n; i++) {
      EventSource* source = static_cast<EventSource*>(events[i].data.ptr);
      if (source->kind == EventSource::kWake) {
        uint64_t count;
        // EAGAIN: another wake-up in this batch already reset the counter.
        while (read(wake_.get(), &count, sizeof count) < 0 && errno != EAGAIN) {
          if (errno != EINTR) fatal(NativeError{Stage::kCapture, errno, "read from the wake eventfd"});
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
  std::vector<std::shared_ptr<Job>> closes, abandons;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closes.swap(close_requests_);
    abandons.swap(abandon_requests_);
  }
  for (auto& job : abandons) abandon(job.get());
  for (auto& job : closes) {
    if (job->finished) continue;
    for (int i = 0; i < 2; i++) {
      if (!job->pipes[i].valid()) continue;
      drain_dry(job.get(), i);
      close_pipe(job.get(), i);
    }
    finish_if_done(job.get());
  }
}

// A job whose fds could not all be watched (add() threw): unwatch it, kill and reap it, end its
// log; no events, its spawn failed.
void Reactor::abandon(Job* job) {
  const int fds[3] = {job->pipes[0].get(), job->pipes[1].get(), job->pidfd_.get()};
  for (int i = 0; i < job->registered_; i++) {
    if (fds[i] >= 0) epoll_remove(epoll_.get(), fds[i], "epoll_ctl(EPOLL_CTL_DEL) of an abandoned job's fd");
  }
  job->kill_and_reap();
  job->reaped = true;
  job->pipes[0].reset();
  job->pipes[1].reset();
  job->finished = true;
  job->log->finish();
  job->capture_closed.store(true);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = jobs_.find(job);
  finished_in_batch_.push_back(std::move(it->second));
  jobs_.erase(it);
}

void Reactor::on_pipe(Job* job, int index, uint32_t events) {
  int fd = job->pipes[index].get();
  if (fd < 0) return;  // closed earlier in this batch
  int available = pipe_bytes(fd);
  if (available > 0) {
    if (job->grow_pipe[index] && available >= job->pipe_capacity[index] && job->pipe_capacity[index] < kLargePipeSize) {
      // Refused (EPERM past pipe-user-pages-soft without CAP_SYS_RESOURCE, ENOMEM): the pipe keeps
      // its size and capture goes on, with more wake-ups. Not asked again for this pipe.
      int grown = fcntl(fd, F_SETPIPE_SZ, kLargePipeSize);
      if (grown > 0) job->pipe_capacity[index] = grown;
      else job->grow_pipe[index] = false;
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
  int remaining = pipe_bytes(fd);
  while (remaining > 0) {
    int available = pipe_bytes(fd);
    if (available == 0) break;
    size_t take = static_cast<size_t>(available < remaining ? available : remaining);
    remaining -= static_cast<int>(job->log->append_from_pipe(fd, index == 0 ? kStdout : kStderr, take));
  }
  request_output_event(job);
}

void Reactor::close_pipe(Job* job, int index) {
  epoll_remove(epoll_.get(), job->pipes[index].get(), "epoll_ctl(EPOLL_CTL_DEL) of a job's pipe");
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

  ExitStatus status;
  if (rc < 0) {
    status.code = -1;  // ECHILD: someone reaped it behind our back; the status is unknowable
  } else if (!job->init_status_.valid() || !read_init_status(job->init_status_.get(), status)) {
    set_status(status, info.si_code, info.si_status);
  }
  job->init_status_.reset();
  status.user_cpu_us = static_cast<uint64_t>(usage.ru_utime.tv_sec) * 1000000 + usage.ru_utime.tv_usec;
  status.system_cpu_us = static_cast<uint64_t>(usage.ru_stime.tv_sec) * 1000000 + usage.ru_stime.tv_usec;
  status.time_ns = realtime_ns();

  epoll_remove(epoll_.get(), pidfd, "epoll_ctl(EPOLL_CTL_DEL) of a job's pidfd");
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
  std::shared_ptr<Job> owned = owner(job);
  if (job->exit_ops.empty()) {
    queue_exit(owned, ExitEvent{status, std::nullopt});
  } else {
    // Removing a cgroup can wait for the kernel (v1 waits for an RCU grace period): not on this
    // thread, which moves every job's output. "exit" is queued once they have run.
    settle_->post([this, owned, status] {
      queue_exit(owned, ExitEvent{status, run_fs_ops(owned->exit_ops, Stage::kExitOps)});
      flush_events();
    });
  }
  finish_if_done(job);
}

void Reactor::finish_if_done(Job* job) {
  if (job->finished || !job->reaped || job->pipes[0].valid() || job->pipes[1].valid()) return;
  job->finished = true;
  job->log->finish();
  job->capture_closed.store(true);
  CloseEvent close{job->log->committed(), job->log->dropped_bytes(), job->log->truncated(), job->log->first_error()};
  std::shared_ptr<Job> owned;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = jobs_.find(job);
    owned = std::move(it->second);
    jobs_.erase(it);
    // "close" always follows "exit", which may still be waiting for the exit ops.
    if (job->exit_queued_) events_.push_back(Queued{owned, close});
    else job->held_close_ = close;
  }
  finished_in_batch_.push_back(std::move(owned));
}

// Any thread.
void Reactor::queue_exit(const std::shared_ptr<Job>& job, ExitEvent exit) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(Queued{job, std::move(exit)});
  job->exit_queued_ = true;
  if (job->held_close_) {
    events_.push_back(Queued{job, *job->held_close_});
    job->held_close_.reset();
  }
}

// Store-then-load on both sides, sequentially consistent: the capture thread commits then reads the
// watch flag; JS sets the flag then reads the committed size. At least one of them sees the other's
// store, so a follower that starts watching never misses growth (no lost wake-up).
void Reactor::request_output_event(Job* job) {
  if (!job->watch_output.load()) return;
  if (job->output_event_pending.exchange(true)) return;
  queue(owner(job), OutputEvent{});
}

std::shared_ptr<Job> Reactor::owner(Job* job) {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.at(job);
}

void Reactor::queue(const std::shared_ptr<Job>& job, JobEvent event) {
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(Queued{job, std::move(event)});
}

// Any thread.
void Reactor::flush_events() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (events_.empty() || call_pending_) return;
    call_pending_ = true;
  }
  // The queue is unbounded, so the call cannot find it full. napi_closing: the environment is
  // going away, and the destructor releases what is queued.
  napi_status status = napi_call_threadsafe_function(tsfn_, nullptr, napi_tsfn_nonblocking);
  if (status != napi_ok && status != napi_closing) fatal(NativeError{Stage::kCapture, EIO, "napi_call_threadsafe_function"});
}

void Reactor::call_js(napi_env env, napi_value, void* context, void*) {
  if (env == nullptr) return;  // the environment is going away
  static_cast<Reactor*>(context)->dispatch(env);
}

void Reactor::dispatch(napi_env env) {
  std::vector<Queued> batch;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(events_);
    call_pending_ = false;
  }
  for (auto& queued : batch) {
    Job& job = *queued.job;
    if (!job.listener) continue;  // its spawn failed after all (see abandon)
    if (auto* output = std::get_if<OutputEvent>(&queued.event)) {
      job.output_event_pending.store(false);  // seq_cst, before reading the size
      output->log_bytes = job.log->committed();
      job.listener->call(queued.event);
    } else if (std::holds_alternative<CloseEvent>(queued.event)) {
      // The last event: the listener goes with it, before the call (which may spawn again).
      std::unique_ptr<JsListener> listener = std::move(job.listener);
      if (--live_jobs_ == 0) napi_unref_threadsafe_function(env, tsfn_);
      listener->call(queued.event);
    } else {
      job.listener->call(queued.event);
    }
  }
}

}  // namespace jw
