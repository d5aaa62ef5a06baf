/* jobworker-init: PID 1 of a job's PID namespace (SpawnOptions.isolation.pid).
 *
 * The addon's child execs this as PID 1, with the job's credentials, no capabilities and
 * no_new_privs already in force, its stdio the job's, its argv the command's candidates and argv
 * and its environment the command's (init_protocol.h). It then:
 *  - starts the command: a fork (of this small process, not of the daemon: until this exec the
 *    child shared the daemon's memory, and an OOM kill of a process sharing it kills the daemon
 *    too, so nothing of the job may run before it), its own session, every signal unblocked, then
 *    execve of each candidate with execvp's rules. A close-on-exec pipe tells init whether the exec
 *    happened; init reports it (or the errno) as the first record on the status pipe, and the
 *    addon's spawn returns (or fails) on it;
 *  - reaps every process of the namespace that exits (orphans are re-parented to it);
 *  - forwards every signal it receives to every other process of the namespace (kill(-1)). The
 *    kernel drops signals that a namespace's PID 1 has no handler for, so without this `stop`'s
 *    SIGTERM would never reach the job. Every process rather than the command alone, because that
 *    is what stopping a job means (the Worker signalled each process of the job's cgroup before
 *    there was a namespace); the command's children are not left to SIGKILL when it goes first;
 *  - when the command exits, writes its wait status on the status pipe (init_protocol.h) and exits
 *    too: the kernel then kills whatever is left in the namespace, and the addon, reaping init,
 *    reports the command's status. SIGKILL from outside (stop's last resort, an OOM kill of the
 *    group) kills init at once, and the addon reports init's own SIGKILL.
 *
 * It makes only system calls: on x86-64 it is built without a C library (-nostdlib, static), so
 * that its exec maps two small segments and runs no start-up code; elsewhere with a static libc. */
#define _GNU_SOURCE
#include "init_protocol.h"

#define JW_SIGCHLD 17
#define JW_WEXITED 4
#define JW_WNOHANG 1
#define JW_P_ALL 0
#define JW_SIG_BLOCK 0
#define JW_PR_SET_DUMPABLE 4
#define JW_CLD_EXITED 1
#define JW_ECHILD 10
#define JW_EINTR 4
#define JW_ENOENT 2
#define JW_EACCES 13
#define JW_ENODEV 19
#define JW_ENOTDIR 20
#define JW_ETIMEDOUT 110
#define JW_ESTALE 116
#define JW_SIG_SETMASK 2
#define JW_O_CLOEXEC 02000000
#define JW_P_PID 1

#if defined(JW_INIT_NOLIBC) && defined(__x86_64__)

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_rt_sigprocmask 14
#define SYS_getpid 39
#define SYS_clone 56
#define SYS_execve 59
#define SYS_kill 62
#define SYS_setsid 112
#define SYS_exit_group 231
#define SYS_pipe2 293
#define SYS_rt_sigtimedwait 128
#define SYS_prctl 157
#define SYS_waitid 247

static long sys6(long n, long a, long b, long c, long d, long e) {
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  __asm__ volatile("syscall" : "=a"(ret) : "0"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
  return ret; /* -errno on failure */
}

/* The kernel's siginfo as SIGCHLD and waitid fill it on a 64-bit architecture (the union starts at
   offset 16). */
typedef struct {
  int si_signo, si_errno, si_code, pad;
  int si_pid;
  unsigned int si_uid;
  int si_status;
  char rest[128 - 28];
} jw_siginfo;

/* The compiler may emit a call to it for a struct's initialisation. */
void* memset(void* s, int c, unsigned long n) {
  unsigned char* p = (unsigned char*)s;
  while (n--) *p++ = (unsigned char)c;
  return s;
}

int init_main(long argc, char** argv, char** envp);

__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov (%rsp), %rdi\n" /* argc, then argv[], as the kernel laid them out */
    "  lea 8(%rsp), %rsi\n"
    "  lea 16(%rsp,%rdi,8), %rdx\n" /* envp[], after argv's NULL */
    "  and $-16, %rsp\n"
    "  call init_main\n"
    "  mov %eax, %edi\n"
    "  mov $231, %eax\n" /* exit_group */
    "  syscall\n"
    "  hlt\n");

#else /* any other architecture: the same calls through a static C library */

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static long sys6(long n, long a, long b, long c, long d, long e) {
  long ret = syscall(n, a, b, c, d, e);
  return ret < 0 ? -(long)errno : ret;
}

typedef siginfo_t jw_siginfo;

int init_main(long argc, char** argv, char** envp);
int main(int argc, char** argv, char** envp) { return init_main(argc, argv, envp); }

#endif

static long sys3(long n, long a, long b, long c) { return sys6(n, a, b, c, 0, 0); }

static void say(const char* text) {
  unsigned long n = 0;
  while (text[n]) n++;
  sys3(SYS_write, 2, (long)text, (long)n);
}

/* Reports the command's status on the pipe, then exits with what a shell would show for it. */
static int finish(const jw_siginfo* command) {
  struct jw_init_status status;
  status.magic = JW_INIT_STATUS_MAGIC;
  status.how = command->si_code;
  status.value = command->si_status;
  long n;
  do n = sys3(SYS_write, JW_INIT_STATUS_FD, (long)&status, sizeof status);
  while (n == -JW_EINTR);
  return command->si_code == JW_CLD_EXITED ? command->si_status & 0xff : 128 + (command->si_status & 0x7f);
}

static void report_started(int stage, int err, int candidate) {
  struct jw_init_started started;
  started.magic = JW_INIT_STARTED_MAGIC;
  started.stage = stage;
  started.err = err;
  started.candidate = candidate;
  long n;
  do n = sys3(SYS_write, JW_INIT_STATUS_FD, (long)&started, sizeof started);
  while (n == -JW_EINTR);
}

/* In the command's process, between the fork and the exec: why it could not start, on init's
   close-on-exec pipe, then out. */
static void command_failed(int fd, int stage, int err, int candidate) {
  int message[3] = {stage, err, candidate};
  long n;
  do n = sys3(SYS_write, fd, (long)message, sizeof message);
  while (n == -JW_EINTR);
  sys3(SYS_exit_group, 127, 0, 0);
}

/* The command's process: returns only if it could not exec (command_failed). execvp's rules: skip
   candidates that do not exist; remember EACCES; stop at any other error. */
static void exec_command(int report_fd, char** candidates, long count, char** argv, char** envp) {
  long session = sys3(SYS_setsid, 0, 0, 0);
  if (session < 0) command_failed(report_fd, JW_INIT_STAGE_SESSION, (int)-session, -1);
  uint64_t none = 0;
  sys6(SYS_rt_sigprocmask, JW_SIG_SETMASK, (long)&none, 0, sizeof none, 0);
  int reported = JW_ENOENT, reported_candidate = 0, saw_eacces = 0;
  for (long i = 0; i < count; i++) {
    int e = (int)-sys3(SYS_execve, (long)candidates[i], (long)argv, (long)envp);
    if (e == JW_EACCES) {
      if (!saw_eacces) reported_candidate = (int)i;
      saw_eacces = 1;
    } else if (e != JW_ENOENT && e != JW_ENOTDIR && e != JW_ESTALE && e != JW_ENODEV && e != JW_ETIMEDOUT) {
      reported = e;
      reported_candidate = (int)i;
      saw_eacces = 0;
      break;
    }
  }
  command_failed(report_fd, JW_INIT_STAGE_EXEC, saw_eacces ? JW_EACCES : reported, reported_candidate);
}

/* Starts the command and reports on the status pipe whether it exec'd. Returns its pid, or 0 if it
   could not start (reported; it has been reaped). */
static long start_command(char** candidates, long count, char** argv, char** envp) {
  int report[2];
  long r = sys3(SYS_pipe2, (long)report, JW_O_CLOEXEC, 0);
  if (r < 0) {
    report_started(JW_INIT_STAGE_PIPES, (int)-r, -1);
    return 0;
  }
  long pid = sys6(SYS_clone, JW_SIGCHLD, 0, 0, 0, 0); /* a fork: this process's own small memory */
  if (pid == 0) {
    sys3(SYS_close, report[0], 0, 0);
    sys3(SYS_close, JW_INIT_STATUS_FD, 0, 0); /* the status pipe is init's alone */
    exec_command(report[1], candidates, count, argv, envp);
  }
  sys3(SYS_close, report[1], 0, 0);
  if (pid < 0) {
    sys3(SYS_close, report[0], 0, 0);
    report_started(JW_INIT_STAGE_CLONE, (int)-pid, -1);
    return 0;
  }
  /* End of file: the exec closed the pipe (it happened). A message: it failed, and the process exits. */
  int message[3];
  long n;
  do n = sys3(SYS_read, report[0], (long)message, sizeof message);
  while (n == -JW_EINTR);
  sys3(SYS_close, report[0], 0, 0);
  if (n == (long)sizeof message) {
    jw_siginfo info;
    do r = sys6(SYS_waitid, JW_P_PID, pid, (long)&info, JW_WEXITED, 0);
    while (r == -JW_EINTR);
    report_started(message[0], message[1], message[2]);
    return 0;
  }
  report_started(0, 0, -1);
  return pid;
}

int init_main(long argc, char** argv, char** envp) {
  /* kill(-1) from anything but a namespace's PID 1 would signal every process this user may
     signal on the host. */
  long count = 0;
  if (sys3(SYS_getpid, 0, 0, 0) != 1 || argc < 3) {
    say("jobworker-init: runs only as PID 1 of a job's PID namespace, started by the jobworker addon\n");
    return 2;
  }
  for (const char* p = argv[1]; *p; p++) {
    if (*p < '0' || *p > '9' || count > 100000000) return 2;
    count = count * 10 + (*p - '0');
  }
  if (count < 1 || 2 + count >= argc) return 2; /* at least one candidate and argv[0] */

  /* Not ptrace-able by the job's processes (same uid), and its /proc files are root's: they cannot
     make it write a status of their choosing. (The command's exec makes its own process dumpable.) */
  sys3(SYS_prctl, JW_PR_SET_DUMPABLE, 0, 0);

  /* Every signal stays blocked (it arrives so from the addon's child) and is taken synchronously:
     blocked signals are queued even for an unkillable PID 1. One sent before the command starts
     waits, and is forwarded to it. */
  uint64_t all = ~(uint64_t)0;
  sys6(SYS_rt_sigprocmask, JW_SIG_BLOCK, (long)&all, 0, sizeof all, 0);

  long command = start_command(argv + 2, count, argv + 2 + count, envp);
  if (command == 0) return 127;

  /* The job's stdio: init writes nothing there, and must not keep the capture open. */
  sys3(SYS_close, 0, 0, 0);
  sys3(SYS_close, 1, 0, 0);
  sys3(SYS_close, 2, 0, 0);

  for (;;) {
    /* Reap whatever has exited; the command ends the job. */
    for (;;) {
      jw_siginfo info;
      memset(&info, 0, sizeof info);
      long r = sys6(SYS_waitid, JW_P_ALL, 0, (long)&info, JW_WEXITED | JW_WNOHANG, 0);
      if (r == -JW_EINTR) continue;
      if (r < 0) return r == -JW_ECHILD ? 255 : 254; /* no children at all: the command is gone unseen */
      if (info.si_pid == 0) break;
      if (info.si_pid == command) return finish(&info);
    }
    jw_siginfo received;
    long signal = sys6(SYS_rt_sigtimedwait, (long)&all, (long)&received, 0, sizeof all, 0);
    if (signal > 0 && signal != JW_SIGCHLD) sys3(SYS_kill, -1, signal, 0);
  }
}
