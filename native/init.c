/* jobworker-init: PID 1 of a job's PID namespace (SpawnOptions.isolation.pid).
 *
 * The addon's child execs the job's command first, as PID 1's only child, then execs this, with
 * the job's credentials, no capabilities and no_new_privs already in force. It then:
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

#if defined(JW_INIT_NOLIBC) && defined(__x86_64__)

#define SYS_write 1
#define SYS_close 3
#define SYS_rt_sigprocmask 14
#define SYS_getpid 39
#define SYS_kill 62
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

int init_main(long argc, char** argv);

__asm__(
    ".text\n"
    ".global _start\n"
    "_start:\n"
    "  xor %ebp, %ebp\n"
    "  mov (%rsp), %rdi\n" /* argc, then argv[], as the kernel laid them out */
    "  lea 8(%rsp), %rsi\n"
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

int init_main(long argc, char** argv);
int main(int argc, char** argv) { return init_main(argc, argv); }

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

int init_main(long argc, char** argv) {
  /* kill(-1) from anything but a namespace's PID 1 would signal every process this user may
     signal on the host. */
  if (sys3(SYS_getpid, 0, 0, 0) != 1 || argc != 2) {
    say("jobworker-init: runs only as PID 1 of a job's PID namespace, started by the jobworker addon\n");
    return 2;
  }
  long command = 0;
  for (const char* p = argv[1]; *p; p++) {
    if (*p < '0' || *p > '9' || command > 100000000) return 2;
    command = command * 10 + (*p - '0');
  }

  /* Not ptrace-able by the job's processes (same uid), and its /proc files are root's: they cannot
     make it write a status of their choosing. */
  sys3(SYS_prctl, JW_PR_SET_DUMPABLE, 0, 0);
  /* The job's stdio: init writes nothing there, and must not keep the capture open. */
  sys3(SYS_close, 0, 0, 0);
  sys3(SYS_close, 1, 0, 0);
  sys3(SYS_close, 2, 0, 0);

  /* Every signal stays blocked (it arrives so from the addon's child) and is taken synchronously:
     blocked signals are queued even for an unkillable PID 1. */
  uint64_t all = ~(uint64_t)0;
  sys6(SYS_rt_sigprocmask, JW_SIG_BLOCK, (long)&all, 0, sizeof all, 0);

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
