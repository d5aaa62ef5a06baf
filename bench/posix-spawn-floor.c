/*
 * The floor for spawn+exit: glibc's posix_spawn (clone3 with CLONE_VM | CLONE_VFORK since 2.34) and
 * waitpid, in a loop, from a small C process. Each child gets what a jobworker job gets: stdin from
 * /dev/null, stdout and stderr on fresh pipes, its own session, default signal dispositions and an
 * empty signal mask. After the child is reaped, the pipes are read to EOF and closed.
 *
 * With -l LOGDIR, each spawn also does the file work the addon does for a job's log: create a new
 * file in LOGDIR (O_CREAT | O_TRUNC), write a 16-byte header, and after the exit ftruncate and close
 * it. The files are left for the caller to remove (removing them here would change what creating
 * the next ones costs: ext4 skips recently deleted inodes).
 *
 * Usage: posix-spawn-floor [-l LOGDIR] ITERATIONS PROGRAM [ARGS...]
 * Prints one line per spawn: the nanoseconds from before posix_spawn (or the log's creation) to
 * after the pipes (and the log) are closed.
 * Compiled at bench time (cc -O2) by bench/spawn.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, int err) {
  fprintf(stderr, "posix-spawn-floor: %s: %s\n", what, strerror(err));
  exit(1);
}

static void drain_and_close(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  close(fd);
}

int main(int argc, char **argv) {
  const char *log_dir = NULL;
  if (argc >= 3 && strcmp(argv[1], "-l") == 0) {
    log_dir = argv[2];
    argv += 2;
    argc -= 2;
  }
  if (argc < 3) {
    fprintf(stderr, "usage: %s [-l LOGDIR] ITERATIONS PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  long iterations = strtol(argv[1], NULL, 10);
  char **child_argv = argv + 2;
  char *child_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);

  long long *samples = malloc(sizeof *samples * (size_t)(iterations > 0 ? iterations : 1));
  if (!samples) die("malloc", ENOMEM);

  for (long i = 0; i < iterations; i++) {
    long long start = now_ns();
    int log_fd = -1;
    if (log_dir) {
      char log_path[4096];
      snprintf(log_path, sizeof log_path, "%s/floor-%d-%ld.log", log_dir, (int)getpid(), i);
      log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
      if (log_fd < 0) die(log_path, errno);
      static const char header[16] = "JWLOG\0\r\n\x10\0\0\0\x01\0\0";
      if (pwrite(log_fd, header, sizeof header, 0) != (ssize_t)sizeof header) die("pwrite", errno);
    }
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) < 0) die("pipe2", errno);
    if (pipe2(err, O_CLOEXEC) < 0) die("pipe2", errno);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    pid_t pid;
    int rc = posix_spawn(&pid, child_argv[0], &actions, &attr, child_argv, child_env);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) die("posix_spawn", rc);
    close(out[1]);
    close(err[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) die("waitpid", errno);
    }
    drain_and_close(out[0]);
    drain_and_close(err[0]);
    if (log_fd >= 0) {
      if (ftruncate(log_fd, 16) < 0) die("ftruncate", errno);
      close(log_fd);
    }
    samples[i] = now_ns() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "posix-spawn-floor: child failed (status %d)\n", status);
      return 1;
    }
  }
  /* Printed at the end, so that writing the figures costs nothing inside the loop. */
  for (long i = 0; i < iterations; i++) printf("%lld\n", samples[i]);
  return 0;
}
