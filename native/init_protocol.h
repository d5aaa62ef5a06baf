/* What jobworker-init (native/init.c) and the addon agree on. C, so that both can include it. */
#ifndef JOBWORKER_INIT_PROTOCOL_H
#define JOBWORKER_INIT_PROTOCOL_H

#include <stdint.h>

/* init's argv: { "jobworker-init", "<the command's pid in the namespace, decimal>", NULL }. */

/* The write end of the status pipe, open (not close-on-exec) in init and in nothing else. */
#define JW_INIT_STATUS_FD 3

/* The command's wait status, written once (one write, atomic on a pipe) when init reaps it, right
   before init exits. A namespace's PID 1 cannot die by the signal that killed the command (the
   kernel keeps it unkillable from inside), so init's own exit status cannot carry it. */
struct jw_init_status {
  uint32_t magic;    /* JW_INIT_STATUS_MAGIC */
  int32_t how;       /* si_code: CLD_EXITED, CLD_KILLED or CLD_DUMPED */
  int32_t value;     /* si_status: the exit code, or the signal */
};

#define JW_INIT_STATUS_MAGIC 0x4a57494eu /* "JWIN" */

#endif
