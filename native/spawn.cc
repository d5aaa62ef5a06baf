// The child side of a spawn, and the two ways of creating it.
//
// Fast path (x86_64, kernel >= 5.7): clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP
// | CLONE_CLEAR_SIGHAND) on a small private stack. No page tables are copied, so the cost does not
// grow with the daemon's heap; the child is in its cgroup from its first instruction; the parent
// thread sleeps until the child execs or exits, and reads any failure from memory they share.
//
// Fallback (clone3 refused by seccomp or an old kernel, other architectures): a fork-like
// clone(CLONE_PIDFD) whose child waits on a gate pipe until the parent has written its pid into the
// cgroup's cgroup.procs; failures come back over a close-on-exec pipe.
//
// Everything in child_main runs between clone and exec: only async-signal-safe calls, no allocation,
// no locks. Under CLONE_VM the child shares the parent's memory, so it must not touch anything the
// parent's other threads could be holding.
//
// Isolation (isolation.h) adds the namespace flags to either clone, and steps after the cgroup
// joins. With a PID namespace the child is PID 1 of it and execs jobworker-init (init.c) at once,
// with the command's candidates, argv and environment; init forks the command's process and
// reports on its status pipe whether the exec happened. The spawn returns on that report: by then
// the command has exec'd, or the spawn has failed and nothing of the job runs. Nothing of the job
// ever runs while a process in its cgroup shares the daemon's memory: an OOM kill picks a victim by
// its memory and then kills every process sharing that memory, and the kernel spares only a vfork
// child that has not reached its exec (not one between releasing its parent and switching to its
// new memory, nor any member of a group kill).
#include "spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>

#include "clone3_vm.h"
#include "init_protocol.h"
#include "spawn_deadline.h"

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_execveat
#define SYS_execveat 322
#endif

namespace jw {
namespace {

static_assert(JW_INIT_STAGE_PIPES == static_cast<int>(Stage::kPipes) && JW_INIT_STAGE_CLONE == static_cast<int>(Stage::kClone) &&
                  JW_INIT_STAGE_SESSION == static_cast<int>(Stage::kSession) && JW_INIT_STAGE_EXEC == static_cast<int>(Stage::kExec),
              "init_protocol.h's stages are the addon's");

constexpr size_t kChildStackSize = 64 * 1024;
constexpr size_t kGuardSize = 4096;

// The stack a spawn's child runs on until it execs. One per spawning thread (the JS thread, each
// threadpool thread), mapped at its first spawn and kept: a mapping per spawn costs an munmap,
// which flushes the TLB of every CPU running one of the daemon's threads, and fresh page faults
// every time. Reuse is safe: once the vfork returns, no child runs on it any more (it has exec'd
// into its own memory, or exited), and in the fallback the child has its own copy. A guard page
// below it: an overflow faults instead of writing whatever is mapped there.
class ChildStacks {
 public:
  ~ChildStacks() {
    if (base_ != nullptr) munmap(base_, kChildStackSize + kGuardSize);  // cannot fail: our mapping
  }
  // Throws NativeError (stage kClone) if the stack cannot be mapped.
  void map() {
    if (base_ != nullptr) return;
    void* base = mmap(nullptr, kChildStackSize + kGuardSize, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw NativeError{Stage::kClone, errno};
    if (mprotect(base, kGuardSize, PROT_NONE) < 0) {
      int e = errno;
      munmap(base, kChildStackSize + kGuardSize);
      throw NativeError{Stage::kClone, e};
    }
    base_ = static_cast<char*>(base);
  }
  char* child_stack() const { return base_ + kGuardSize; }  // the lowest address

 private:
  char* base_ = nullptr;
};

thread_local ChildStacks child_stacks;

// Everything the child needs, prepared by the parent (the child must not allocate).
struct ChildArgs {
  const char* const* candidates;
  size_t candidate_count;
  char* const* argv;
  char* const* envp;
  const char* cwd;  // nullptr: inherit
  const int* join_fds;
  size_t join_count;
  int stdin_fd, stdout_fd, stderr_fd;
  int gate_fd;         // fallback only: read end of the gate pipe, else -1
  int error_fd;        // fallback only: write end of the error pipe, else -1
  bool set_nofile;
  struct rlimit nofile;
  long long uid, gid;
  bool set_groups;
  const gid_t* groups;
  size_t group_count;
  int fd_scan_limit;   // if close_range is missing: close up to this fd number
  const IsolationPlan* isolation;  // nullptr: the daemon's namespaces
  bool drop_bounding_set;          // isolation, for a job whose uid is not 0
  bool clear_user_keyrings;        // isolation.fresh_user_keyrings, and the uid owns keys
  // isolation.pid: the write end of init's status pipe, and init's argv (init_protocol.h).
  int init_status_fd;
  char* const* init_argv;
  bool hold_before_exec;  // tests (SpawnRequest::hold_before_exec)
  // The descriptors the child uses (keep_fds), ascending; it closes every other one above 2 first.
  const int* kept_fds;
  size_t kept_count;
  // Written by the child under CLONE_VM, read by the parent after the vfork returns. `fail_candidate`
  // is the exec candidate (stage exec) or the mount step (stage mount).
  volatile int fail_stage;
  volatile int fail_errno;
  volatile int fail_candidate;
};

struct ErrorMessage {
  int stage;
  int err;
  int candidate;
};

// Which step of the stages "namespaces" and "credentials" failed (reported in place of a candidate),
// and what the error then names, with the capability the step needs.
enum IsolationStep : int {
  kStepCgroupNamespace,
  kStepHostname,
  kStepLoopback,
  kStepBoundingSet,
  kStepNoNewPrivs,
  kStepSessionKeyring,
  kStepUserKeyrings,
};
const char* isolation_step_name(int step) {
  switch (step) {
    case kStepCgroupNamespace: return "the cgroup namespace (unshare, needs CAP_SYS_ADMIN)";
    case kStepHostname: return "the hostname (sethostname, needs CAP_SYS_ADMIN)";
    case kStepLoopback: return "the loopback interface (needs CAP_NET_ADMIN)";
    case kStepBoundingSet: return "the capability bounding set (emptying it needs CAP_SETPCAP)";
    case kStepNoNewPrivs: return "no_new_privs";
    case kStepSessionKeyring: return "a session keyring of its own (keyctl)";
    case kStepUserKeyrings: return "the user's keyrings (keyctl)";
  }
  return "";
}

[[noreturn]] void child_fail(ChildArgs* a, Stage stage, int err, int candidate = -1) {
  if (a->error_fd >= 0) {
    ErrorMessage msg{static_cast<int>(stage), err, candidate};
    ssize_t n;
    do n = write(a->error_fd, &msg, sizeof msg);
    while (n < 0 && errno == EINTR);
  } else {
    a->fail_stage = static_cast<int>(stage);
    a->fail_errno = err;
    a->fail_candidate = candidate;
  }
  _exit(127);
}

// The descriptors the child needs, for it to close every other one first (close_others): a copy of
// another spawn's pipe end, taken by this clone while that spawn was in flight, would keep that
// spawn from seeing end of file (its child's exec) for as long as this child waits, which a
// process of this job's user can make for ever with SIGSTOP.
void keep_fds(ChildArgs& a, std::vector<int>& kept) {
  kept.clear();
  for (int fd : {a.stdin_fd, a.stdout_fd, a.stderr_fd, a.gate_fd, a.error_fd, a.init_status_fd}) kept.push_back(fd);
  if (a.isolation != nullptr) kept.push_back(a.isolation->init_fd);
  kept.insert(kept.end(), a.join_fds, a.join_fds + a.join_count);
  kept.erase(std::remove_if(kept.begin(), kept.end(), [](int fd) { return fd < 3; }), kept.end());
  std::sort(kept.begin(), kept.end());
  kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  a.kept_fds = kept.data();
  a.kept_count = kept.size();
}

// In the child: closes [first, last]. Without close_range (before 5.9) one by one up to the scan
// limit; EBADF for the numbers not open is the expected answer.
void close_span(const ChildArgs* a, unsigned first, unsigned last) {
  if (syscall(SYS_close_range, first, last, 0U) == 0) return;
  unsigned end = last < static_cast<unsigned>(a->fd_scan_limit) ? last : static_cast<unsigned>(a->fd_scan_limit);
  for (unsigned fd = first; fd <= end; fd++) close(static_cast<int>(fd));
}

// In the child, first: every descriptor above 2 but the kept ones closed.
void close_others(const ChildArgs* a) {
  unsigned from = 3;
  for (size_t i = 0; i < a->kept_count; i++) {
    unsigned fd = static_cast<unsigned>(a->kept_fds[i]);
    if (fd > from) close_span(a, from, fd - 1);
    from = fd + 1;
  }
  close_span(a, from, ~0U);
}

// Moves fd to a number >= 3 so the dup2 onto 0..2 cannot clobber another source (libuv does the same).
int above_stdio(ChildArgs* a, int fd) {
  if (fd >= 3) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) child_fail(a, Stage::kStdio, errno);
  return moved;
}

// Dispositions are default by then, so unblocking cannot run one of the daemon's handlers.
// (SIG_SETMASK with a valid set cannot fail.)
void unblock_all_signals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Returns only if no candidate could be exec'd: the errno to report, and which candidate.
// execvp's rules: skip candidates that do not exist; remember EACCES; stop at any other error.
int exec_command(const ChildArgs* a, int* candidate_out) {
  int reported = ENOENT;
  int reported_candidate = a->candidate_count > 0 ? 0 : -1;
  bool saw_eacces = false;
  for (size_t i = 0; i < a->candidate_count; i++) {
    execve(a->candidates[i], a->argv, a->envp);
    int e = errno;
    if (e == EACCES) {
      if (!saw_eacces) reported_candidate = static_cast<int>(i);
      saw_eacces = true;
    } else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV && e != ETIMEDOUT) {
      reported = e;
      reported_candidate = static_cast<int>(i);
      saw_eacces = false;
      break;
    }
  }
  *candidate_out = reported_candidate;
  return saw_eacces ? EACCES : reported;
}

// isolation.pid, in PID 1 with the job's credentials and stdio already: init in this process's place,
// at once. It starts the command itself (init.c). Signals stay blocked: init takes them
// synchronously, and whatever arrives before it runs waits for it.
[[noreturn]] void run_under_init(ChildArgs* a) {
  // init's status pipe goes to JW_INIT_STATUS_FD. Every other descriptor above 2 is close-on-exec
  // already; 0 to 2 are the job's stdio, which init hands to the command and then closes.
  int init_fd = a->isolation->init_fd;
  if (init_fd == JW_INIT_STATUS_FD && (init_fd = fcntl(init_fd, F_DUPFD_CLOEXEC, JW_INIT_STATUS_FD + 1)) < 0)
    child_fail(a, Stage::kInit, errno);
  if (a->init_status_fd == JW_INIT_STATUS_FD) {
    if (fcntl(JW_INIT_STATUS_FD, F_SETFD, 0) < 0) child_fail(a, Stage::kInit, errno);
  } else if (dup2(a->init_status_fd, JW_INIT_STATUS_FD) < 0) {
    child_fail(a, Stage::kInit, errno);
  }
  syscall(SYS_execveat, init_fd, "", a->init_argv, a->envp, AT_EMPTY_PATH);
  child_fail(a, Stage::kInit, errno);
}

// Isolation's steps that need the daemon's privileges, right after the cgroup joins.
void isolate(ChildArgs* a) {
  const IsolationPlan& plan = *a->isolation;
  // After the joins: the namespace is rooted at the job's own cgroup in every hierarchy.
  if (plan.cgroup_namespace && unshare(CLONE_NEWCGROUP) < 0) child_fail(a, Stage::kNamespaces, errno, kStepCgroupNamespace);
  size_t failed_step = 0;
  if (int err = run_mount_steps(plan, a->uid, a->gid, a->set_groups, a->groups, a->group_count, &failed_step))
    child_fail(a, Stage::kMount, err, static_cast<int>(failed_step));
  if (int err = set_hostname(plan)) child_fail(a, Stage::kNamespaces, err, kStepHostname);
  if (plan.loopback_up) {
    if (int err = bring_loopback_up()) child_fail(a, Stage::kNamespaces, err, kStepLoopback);
  }
}

int child_main(void* arg) {
  ChildArgs* a = static_cast<ChildArgs*>(arg);

  // Signals arrive blocked (the parent blocked them all around the clone). Reset every disposition:
  // CLONE_CLEAR_SIGHAND resets handlers but keeps SIG_IGN, and Node ignores SIGPIPE and SIGXFSZ,
  // which would otherwise survive exec. The fallback has no CLONE_CLEAR_SIGHAND at all.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  // The result is not checked: the only failure is EINVAL, for the signals glibc keeps for itself
  // (32, 33), which nothing can have a handler for.
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }

  // Nothing but what it uses: the parent's ends of the fallback's pipes go too. And, isolated, not
  // the daemon's working directory: /proc/1/cwd in the job's namespace would lead there, under
  // whatever hides it.
  close_others(a);
  if (a->isolation != nullptr && chdir("/") < 0) child_fail(a, Stage::kChdir, errno);

  if (a->gate_fd >= 0) {
    // Fallback: wait until the parent has placed us in the job's cgroup.
    char go;
    ssize_t n;
    do n = read(a->gate_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) child_fail(a, Stage::kCgroup, n < 0 ? errno : ECANCELED);
  }

  // Own session and process group, so a terminal's signals and the daemon's group never reach it.
  if (setsid() < 0) child_fail(a, Stage::kSession, errno);

  // v1 controller hierarchies (hybrid and legacy hosts): join before exec, so the job's code never
  // runs outside its limits. "0" into `tasks` moves the calling thread only, and so takes no
  // cgroup_threadgroup_rwsem; this child is a single thread, so that is the whole process. Into
  // `cgroup.procs` it would take that global lock for writing, which waits for an RCU grace period
  // when no migration happened in the last few milliseconds: 7-15 ms per start on an idle host.
  for (size_t i = 0; i < a->join_count; i++) {
    ssize_t n;
    do n = write(a->join_fds[i], "0", 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) child_fail(a, Stage::kCgroup, n < 0 ? errno : EIO);
  }

  if (a->isolation != nullptr) isolate(a);

  int in = above_stdio(a, a->stdin_fd);
  int out = above_stdio(a, a->stdout_fd);
  int err = above_stdio(a, a->stderr_fd);
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) child_fail(a, Stage::kStdio, errno);

  // Node raises RLIMIT_NOFILE to the hard limit; give the job an ordinary soft limit back.
  if (a->set_nofile && setrlimit(RLIMIT_NOFILE, &a->nofile) < 0) child_fail(a, Stage::kRlimit, errno);

  // Raw syscalls: glibc's set*id wrappers signal every thread of the process (SIGSETXID), and under
  // CLONE_VM those threads are the daemon's.
  if (a->set_groups && syscall(SYS_setgroups, a->group_count, a->groups) < 0)
    child_fail(a, Stage::kCredentials, errno);
  if (a->gid >= 0 && syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0)
    child_fail(a, Stage::kCredentials, errno);
  // Before the uid switch: dropping from the bounding set needs CAP_SETPCAP.
  if (a->isolation != nullptr) {
    if (a->drop_bounding_set) {
      if (int err = drop_bounding_set(*a->isolation)) child_fail(a, Stage::kCredentials, err, kStepBoundingSet);
    }
    if (int err = set_no_new_privs()) child_fail(a, Stage::kCredentials, err, kStepNoNewPrivs);
    // Not the daemon's session keyring, which every job would share (and could read and write).
    if (int err = join_fresh_session_keyring()) child_fail(a, Stage::kCredentials, err, kStepSessionKeyring);
  }
  if (a->uid >= 0 && syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0)
    child_fail(a, Stage::kCredentials, errno);
  // As the job's uid: the keyrings named are its own now (isolation.h).
  if (a->clear_user_keyrings) {
    if (int err = clear_user_keyrings()) child_fail(a, Stage::kCredentials, err, kStepUserKeyrings);
  }

  // Nothing but 0..2 may reach the job. Mark the rest close-on-exec rather than closing them, so the
  // fallback's error pipe still works until exec.
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    if (errno != ENOSYS && errno != EINVAL) child_fail(a, Stage::kCloseFds, errno);
    // Old kernels: one by one. EBADF for the numbers that are not open is the expected answer.
    for (int fd = 3; fd < a->fd_scan_limit; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
  }

  if (a->cwd != nullptr && chdir(a->cwd) < 0) child_fail(a, Stage::kChdir, errno);

  // Where a SIGSTOP from another process of the job's user would hold it: after the uid switch.
  // (Not SIGSTOP itself: a namespace's PID 1 ignores it from inside.) Only SIGKILL ends the wait.
  if (a->hold_before_exec) {
    for (;;) syscall(SYS_pause);
  }

  if (a->isolation != nullptr && a->isolation->init_fd >= 0) run_under_init(a);

  unblock_all_signals();
  int candidate = -1;
  int e = exec_command(a, &candidate);
  child_fail(a, Stage::kExec, e, candidate);
}

// Holds the parent's signal mask fully blocked for its lifetime: a child must not run one of the
// daemon's handlers before it has reset its dispositions. (pthread_sigmask fails only for an
// invalid `how`.)
class BlockAllSignals {
 public:
  BlockAllSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved_);
  }
  ~BlockAllSignals() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

 private:
  sigset_t saved_;
};

void make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) < 0) throw NativeError{Stage::kPipes, errno};
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
}

void reap(int pidfd) {
  siginfo_t info;
  while (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, nullptr) < 0 && errno == EINTR) {
  }
}

// Set once clone3 into a cgroup proved unsupported here (seccomp ENOSYS, or E2BIG before 5.7).
std::atomic<bool> fast_path_unsupported{false};

#if JW_HAVE_CLONE3_VM
// Returns -errno when clone3 itself failed; otherwise the pid (the child has exec'd or failed).
// `timed_out`: the deadline's watchdog killed the child before it exec'd.
long spawn_vfork(ChildArgs& args, int cgroup_fd, uint64_t namespace_flags, int* pidfd_out, std::chrono::milliseconds limit, bool* timed_out) {
  child_stacks.map();
  *pidfd_out = -1;  // the kernel writes it before the child runs; the watchdog skips -1
  struct clone_args ca;
  std::memset(&ca, 0, sizeof ca);
  ca.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_CLEAR_SIGHAND | namespace_flags;
  ca.pidfd = reinterpret_cast<uint64_t>(pidfd_out);
  ca.exit_signal = SIGCHLD;
  ca.stack = reinterpret_cast<uint64_t>(child_stacks.child_stack());
  ca.stack_size = kChildStackSize;
  if (cgroup_fd >= 0) {
    ca.flags |= CLONE_INTO_CGROUP;
    ca.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  std::vector<int> kept;
  keep_fds(args, kept);
  SpawnDeadline deadline(pidfd_out, limit);
  BlockAllSignals blocked;
  long ret = clone3_vm(&ca, sizeof ca, child_main, &args);
  *timed_out = deadline.finish();
  return ret;
}
#endif

// What the child reported, with the path it concerns.
NativeError child_failure(const ChildArgs& a, int stage, int err, int candidate) {
  NativeError error{static_cast<Stage>(stage), err};
  if (error.stage == Stage::kExec && candidate >= 0 && static_cast<size_t>(candidate) < a.candidate_count) {
    error.path = a.candidates[candidate];
    error.index = candidate;
  }
  if (error.stage == Stage::kChdir && a.cwd != nullptr) error.path = a.cwd;
  if (error.stage == Stage::kMount && a.isolation != nullptr && candidate >= 0 &&
      static_cast<size_t>(candidate) < a.isolation->step_count)
    error.path = a.isolation->steps[candidate].path;
  if (error.stage == Stage::kInit) error.path = init_path();
  if ((error.stage == Stage::kNamespaces || error.stage == Stage::kCredentials) && candidate >= 0)
    error.path = isolation_step_name(candidate);
  return error;
}

// Ends a fallback child that is still waiting at its gate: closing the gate makes it exit at once
// (its read returns 0); the SIGKILL only makes sure of it. Then it is reaped, leaving no zombie.
void abandon_gated(UniqueFd& gate_write, int pidfd) {
  gate_write.reset();
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);  // ESRCH if it already exited: fine
  reap(pidfd);
}

// The fallback. Returns the pid; failures are thrown.
pid_t spawn_gated(ChildArgs& args, int cgroup_fd, uint64_t namespace_flags, UniqueFd& pidfd, std::chrono::milliseconds limit) {
  UniqueFd gate_read, gate_write, error_read, error_write;
  make_pipe(gate_read, gate_write);
  make_pipe(error_read, error_write);
  args.gate_fd = gate_read.get();
  args.error_fd = error_write.get();

  UniqueFd procs;
  if (cgroup_fd >= 0) {
    procs.reset(openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
    if (!procs.valid()) throw NativeError{Stage::kCgroup, errno};
  }

  int child_pidfd = -1;
  long pid;
  std::vector<int> kept;
  keep_fds(args, kept);
  {
    BlockAllSignals blocked;
    // Fork-like: the child gets a copy of this stack and returns 0 here.
    pid = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD | namespace_flags, nullptr, &child_pidfd, nullptr, nullptr);
    if (pid == 0) _exit(child_main(&args));
  }
  if (pid < 0) throw NativeError{Stage::kClone, errno};
  pidfd.reset(child_pidfd);
  gate_read.reset();
  error_write.reset();

  if (procs.valid()) {
    char text[24];
    int len = snprintf(text, sizeof text, "%ld", pid);
    if (write(procs.get(), text, len) != len) {
      int e = errno;
      abandon_gated(gate_write, pidfd.get());
      throw NativeError{Stage::kCgroup, e};
    }
  }
  if (write(gate_write.get(), "1", 1) != 1) {
    int e = errno;
    abandon_gated(gate_write, pidfd.get());
    throw NativeError{Stage::kClone, e};
  }
  gate_write.reset();

  // EOF: the child exec'd (the pipe was close-on-exec). A message: it failed and exits.
  ErrorMessage msg;
  ssize_t n;
  bool timed_out;
  {
    int watched_pidfd = pidfd.get();
    SpawnDeadline deadline(&watched_pidfd, limit);
    do n = read(error_read.get(), &msg, sizeof msg);
    while (n < 0 && errno == EINTR);
    timed_out = deadline.finish();
  }
  if (n == static_cast<ssize_t>(sizeof msg)) {
    reap(pidfd.get());
    throw child_failure(args, msg.stage, msg.err, msg.candidate);
  }
  if (timed_out) {
    reap(pidfd.get());
    throw NativeError{Stage::kClone, ETIMEDOUT};
  }
  return static_cast<pid_t>(pid);
}

// isolation.pid, once init runs: waits for its first record (init_protocol.h), which says whether
// the command exec'd. A failure is thrown (init exits after it, and is reaped here). No record at
// all means init died first (killed: an OOM of the job's cgroup, say); then the spawn stands, and
// the capture thread reports init's end as the job's.
void await_command_start(const ChildArgs& args, SpawnedChild& child, UniqueFd& init_status_write, std::chrono::milliseconds limit) {
  init_status_write.reset();  // ours: end of file must mean init's end
  auto deadline = std::chrono::steady_clock::now() + limit;
  jw_init_started started;
  ssize_t n;
  for (;;) {
    n = read(child.init_status.get(), &started, sizeof started);
    if (n >= 0 || (errno != EINTR && errno != EAGAIN)) break;
    if (errno == EINTR) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    struct pollfd readable = {child.init_status.get(), POLLIN, 0};
    int ready = left.count() > 0 ? poll(&readable, 1, static_cast<int>(left.count()) + 1) : 0;
    if (ready == 0) {
      // Held before the command's exec (spawn_deadline.h): init takes the namespace with it.
      syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
      reap(child.pidfd.get());
      child.pidfd.reset();
      throw NativeError{Stage::kInit, ETIMEDOUT};
    }
  }
  if (n != static_cast<ssize_t>(sizeof started) || started.magic != JW_INIT_STARTED_MAGIC || started.stage == 0) return;
  reap(child.pidfd.get());
  child.pidfd.reset();
  throw child_failure(args, started.stage, started.err, started.candidate);
}

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

void kill_and_reap(SpawnedChild& child) {
  if (!child.pidfd.valid()) return;
  syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);  // ESRCH: it has exited; reaped below
  reap(child.pidfd.get());
  child.pidfd.reset();
}

SpawnedChild spawn_process(const SpawnRequest& req) {
  SpawnedChild child;
  UniqueFd stdout_write, stderr_write;
  make_pipe(child.stdout_read, stdout_write);
  make_pipe(child.stderr_read, stderr_write);
  if (fcntl(child.stdout_read.get(), F_SETFL, O_NONBLOCK) < 0 ||
      fcntl(child.stderr_read.get(), F_SETFL, O_NONBLOCK) < 0)
    throw NativeError{Stage::kPipes, errno};
  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) throw NativeError{Stage::kPipes, errno, "/dev/null"};

  std::vector<const char*> candidates;
  for (const auto& c : req.exec_candidates) candidates.push_back(c.c_str());
  std::vector<char*> argv = c_strings(req.argv);
  std::vector<char*> envp = c_strings(req.envp);

  struct rlimit current;
  if (getrlimit(RLIMIT_NOFILE, &current) < 0) throw NativeError{Stage::kRlimit, errno};

  ChildArgs args;
  std::memset(&args, 0, sizeof args);
  args.candidates = candidates.data();
  args.candidate_count = candidates.size();
  args.argv = argv.data();
  args.envp = envp.data();
  args.cwd = req.cwd.empty() ? nullptr : req.cwd.c_str();
  args.join_fds = req.join_tasks_fds.data();
  args.join_count = req.join_tasks_fds.size();
  args.stdin_fd = dev_null.get();
  args.stdout_fd = stdout_write.get();
  args.stderr_fd = stderr_write.get();
  args.gate_fd = args.error_fd = -1;
  args.set_nofile = req.nofile_soft >= 0;
  args.nofile.rlim_max = current.rlim_max;
  args.nofile.rlim_cur = req.nofile_soft >= 0 && static_cast<rlim_t>(req.nofile_soft) < current.rlim_max
                             ? static_cast<rlim_t>(req.nofile_soft)
                             : current.rlim_max;
  args.uid = req.uid;
  args.gid = req.gid;
  args.set_groups = req.set_groups;
  args.groups = req.groups.data();
  args.group_count = req.groups.size();
  args.fd_scan_limit = current.rlim_cur > 65536 ? 65536 : static_cast<int>(current.rlim_cur);

  // Isolation: the plan (strings and steps the child walks), and with a PID namespace init's status
  // pipe and argv: { "jobworker-init", "<n>", the n candidates, the command's argv } (init_protocol.h).
  std::optional<IsolationPlan> plan;
  UniqueFd init_status_write;
  std::string candidate_count_text = std::to_string(candidates.size());
  std::vector<char*> init_argv;
  args.init_status_fd = -1;
  args.hold_before_exec = req.hold_before_exec;
  if (req.isolation) {
    plan.emplace(*req.isolation, req.cgroup_fd, req.join_tasks_fds);
    args.isolation = &*plan;
    args.drop_bounding_set = (req.uid >= 0 ? req.uid : static_cast<long long>(geteuid())) != 0;
    args.clear_user_keyrings = plan->fresh_user_keyrings && req.uid >= 0 && uid_has_keys(req.uid);
    if (plan->init_fd >= 0) {
      make_pipe(child.init_status, init_status_write);
      if (fcntl(child.init_status.get(), F_SETFL, O_NONBLOCK) < 0) throw NativeError{Stage::kPipes, errno};
      args.init_status_fd = init_status_write.get();
      init_argv.reserve(2 + candidates.size() + argv.size());
      init_argv.push_back(const_cast<char*>("jobworker-init"));
      init_argv.push_back(candidate_count_text.data());
      for (const char* candidate : candidates) init_argv.push_back(const_cast<char*>(candidate));
      init_argv.insert(init_argv.end(), argv.begin(), argv.end());  // ends with argv's nullptr
      args.init_argv = init_argv.data();
    }
  }
  uint64_t namespace_flags = plan ? plan->clone_flags : 0;

  bool use_fast_path = JW_HAVE_CLONE3_VM && !req.force_gated_fork && !fast_path_unsupported.load();
#if JW_HAVE_CLONE3_VM
  if (use_fast_path) {
    int pidfd = -1;
    bool timed_out = false;
    long ret = spawn_vfork(args, req.cgroup_fd, namespace_flags, &pidfd, req.start_timeout, &timed_out);
    if (ret > 0) {
      child.pid = static_cast<pid_t>(ret);
      child.pidfd.reset(pidfd);
      if (args.fail_stage != 0) {
        reap(pidfd);
        throw child_failure(args, args.fail_stage, args.fail_errno, args.fail_candidate);
      }
      if (timed_out) {
        reap(pidfd);
        throw NativeError{Stage::kClone, ETIMEDOUT};
      }
      if (child.init_status.valid()) await_command_start(args, child, init_status_write, req.start_timeout);
      return child;
    }
    int e = static_cast<int>(-ret);
    if (e == ENOSYS || e == E2BIG) {
      fast_path_unsupported.store(true);  // this kernel or seccomp profile will not change its mind
    } else if (e != EINVAL) {
      throw NativeError{Stage::kClone, e};
    }
    // EINVAL: maybe only this request's flags; try the fallback, whose error is more specific.
  }
#else
  (void)use_fast_path;
#endif
  child.pid = spawn_gated(args, req.cgroup_fd, namespace_flags, child.pidfd, req.start_timeout);
  child.gated_fork = true;
  if (child.init_status.valid()) await_command_start(args, child, init_status_write, req.start_timeout);
  return child;
}

}  // namespace jw
