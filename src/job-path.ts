// The PATH a job gets when its environment has none, and the one its command is looked up in then.
// The Worker puts it in the job's environment and the native spawn searches it: one value for both.
// Dependency-free, so every layer can import it.

/** The PATH systemd gives services. */
export const DEFAULT_JOB_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
