/* What jobworker-init (native/init.c) and the addon agree on. C, so that both can include it. */
#ifndef JOBWORKER_INIT_PROTOCOL_H
#define JOBWORKER_INIT_PROTOCOL_H

#include <stdint.h>

/* init's argv: { "jobworker-init", "<n>", candidate_1 … candidate_n, argv_0 … argv_k, NULL } and its
   environment the command's: init starts the command itself (fork, then execve of each candidate in
   turn, execvp's rules), so that no process of the job shares the daemon's memory once init runs. */

/* The first record on the status pipe, once the command has exec'd (stage 0) or could not be started
   (stage: one of JW_INIT_STAGE_*, the addon's Stage numbers; err: the errno; candidate: which one the
   errno is about, or -1). One write, atomic on a pipe. */
struct jw_init_started {
  uint32_t magic;    /* JW_INIT_STARTED_MAGIC */
  int32_t stage;
  int32_t err;
  int32_t candidate;
};

#define JW_INIT_STARTED_MAGIC 0x4a575354u /* "JWST" */
#define JW_INIT_STAGE_PIPES 4
#define JW_INIT_STAGE_CLONE 5
#define JW_INIT_STAGE_SESSION 9
#define JW_INIT_STAGE_EXEC 15

/* The write end of the status pipe, open (not close-on-exec) in init and in nothing else. */
#define JW_INIT_STATUS_FD 3

/* Then the command's wait status, written once (one write, atomic on a pipe) when init reaps it, right
   before init exits. A namespace's PID 1 cannot die by the signal that killed the command (the
   kernel keeps it unkillable from inside), so init's own exit status cannot carry it. */
struct jw_init_status {
  uint32_t magic;    /* JW_INIT_STATUS_MAGIC */
  int32_t how;       /* si_code: CLD_EXITED, CLD_KILLED or CLD_DUMPED */
  int32_t value;     /* si_status: the exit code, or the signal */
};

#define JW_INIT_STATUS_MAGIC 0x4a57494eu /* "JWIN" */

#endif
