// How a job is kept apart from the host and from other jobs: the namespaces it is born in, what its
// mount namespace shows, and the credentials it ends with. The mechanism is the addon's
// (native/isolation.*, native/init.c; docs/design.md, "Isolation"); who a job runs as, and which of
// these an admin allows, is the Worker's and the daemon's.

/** A directory (or file) of the host shown at another place inside the job's mount namespace. */
export interface BindMount {
  /**
   * Absolute path on the host. For a job whose uid is not 0 it is opened with the job's own uid,
   * gid and groups, so a bind never reaches what the job's user could not reach by itself (a bind
   * would otherwise skip the permissions of the source's parent directories). Opened after `hide`:
   * a hidden directory cannot be bound back in (it shows as empty).
   */
  source: string;
  /**
   * Absolute path inside the job (its view: after `hide` and the private /tmp); must already exist
   * (nothing is created), and be of the source's kind (directory or file).
   */
  target: string;
  /** Read-only in the job (recursively: mounts beneath the source are read-only too). */
  readOnly: boolean;
}

/**
 * The namespaces and mounts of a job. Given at all, it also means: `no_new_privs` (setuid and
 * file-capability binaries raise nothing), and, for a job whose uid is not 0, no capabilities left
 * in any set, the bounding set included. Without it a job runs in the daemon's namespaces, as before.
 *
 * What the daemon needs for it: CAP_SYS_ADMIN (namespaces, mounts, the hostname), CAP_SETPCAP (to
 * empty a job's bounding set: without it the spawn fails, stage "credentials", EPERM), CAP_SETUID
 * and CAP_SETGID (the job's ids, and a bind's source opened with them), CAP_NET_ADMIN for
 * `network: 'none'` (the loopback interface). Without CAP_SYS_ADMIN the clone fails: stage "clone",
 * EPERM.
 *
 * A root job (uid 0, or no uid given while the daemon is root) keeps its capabilities: it could
 * undo every mount below (umount the hidden directories, remount the root writable, mount cgroupfs
 * itself). Isolation is a boundary for unprivileged jobs only.
 *
 * Steps run in the child between clone and exec, in this order; each failure is a SpawnError with
 * the stage given (and `path` where there is one), and nothing of the job has run: the cgroup
 * namespace ("namespaces") → mount propagation private → writable paths taken → `hide` → bind
 * sources taken → read-only root → /proc → the cgroup view → private /tmp → binds and writable paths attached
 * (all "mount", `path` = the mount point, or the bind's source) → hostname, loopback
 * ("namespaces") → credentials, capabilities, no_new_privs ("credentials") → chdir, as the job's
 * user ("chdir") → exec of the command ("exec") → exec of jobworker-init ("init", only with `pid`;
 * held open since the first such spawn, so it cannot fail for want of the file: were it to fail
 * anyway, the command, already exec'd, dies with the namespace at once).
 */
export interface Isolation {
  /**
   * A PID namespace of its own. Its PID 1 is jobworker-init (built next to the addon), and the
   * command is PID 1's only child: init reaps every orphan, forwards every signal it is sent to
   * every process of the job (kill(-1): what stopping a job means; so signal such a job through
   * its NativeProcess only, not each of its processes, or they get the signal twice), and reports
   * the command's own exit status, which ExitInfo gives exactly as without isolation (code, or the
   * signal; SIGKILL for an OOM kill). When the command exits, the job ends: init exits and the
   * kernel kills whatever else is left in the namespace. SIGSTOP cannot be forwarded (it stops
   * init only): freeze the cgroup instead. With `mount`, /proc is a fresh one that shows only the
   * job's processes.
   */
  pid: boolean;
  /**
   * A mount namespace of its own, propagation private (nothing mounted in it is seen outside, and
   * the host's later mounts and unmounts are not seen in it: its view is fixed at the start).
   * Needed by `readOnlyRoot`, `privateTmp`, `hide`, `binds`, `writable`, the fresh /proc and the
   * cgroup view.
   */
  mount: boolean;
  /** An IPC namespace of its own: System V IPC objects and POSIX message queues not shared with anyone. */
  ipc: boolean;
  /** A UTS namespace of its own: the hostname (see `hostname`) and domain name are the job's. */
  uts: boolean;
  /**
   * A cgroup namespace rooted at the job's cgroups (made after the job joined them, in every
   * hierarchy): /proc/self/cgroup shows "/". With `mount`, /sys/fs/cgroup is replaced by a
   * read-only view of the job's own cgroups only (pure v2: a cgroup2 mount; hybrid and v1 hosts:
   * each hierarchy mounted again, read-only, on a read-only tmpfs), so the job sees neither
   * other jobs' cgroups nor a writable control file.
   */
  cgroup: boolean;
  /**
   * 'host': the host's network. 'none': a network namespace of its own with only the loopback
   * interface, up (creating one costs more than every other namespace together: see
   * docs/benchmarks.md).
   */
  network: 'host' | 'none';
  /**
   * The hostname inside the job (needs `uts`; at most 64 bytes). Absent: the namespace keeps a copy
   * of the host's name, as unshare(1) does.
   */
  hostname?: string;
  /**
   * Every mount the job sees becomes read-only (recursively: mount_setattr, kernel >= 5.12),
   * except the private /tmp, /proc, `binds` that are not read-only and `writable`. Needs `mount`.
   */
  readOnlyRoot?: boolean;
  /**
   * A fresh, empty tmpfs (mode 1777, nosuid, nodev) on /tmp, /var/tmp and /dev/shm (those that
   * exist), private to the job: two jobs never see each other's files there. Its pages are
   * charged to the job's memory cgroup. Needs `mount`.
   */
  privateTmp?: boolean;
  /**
   * Absolute paths of directories made empty and unreadable inside the job (a read-only tmpfs of
   * mode 000 mounted on each): the daemon's state directory, its configuration, its PKI. Each
   * must exist and be a directory (ENOENT, ENOTDIR: a SpawnError, stage "mount"): a directory
   * that does not exist when the job starts could appear later, unhidden. Needs `mount`.
   */
  hide?: readonly string[];
  /**
   * Empty the job's uid's own keyrings (user, user-session and persistent) before exec. The kernel
   * keeps them after that uid's last process is gone, so a uid that goes from one job to another
   * (a dynamic uid) would otherwise hand the first job's keys to the next. Only for a uid no other
   * live process uses: it empties them for everyone of that uid. (Every isolated job also gets a
   * new, empty session keyring of its own, rather than sharing the daemon's.)
   */
  freshUserKeyrings?: boolean;
  /** Host paths shown inside the job (after `hide`, in order). Needs `mount`. */
  binds?: readonly BindMount[];
  /**
   * Absolute paths of the host the job must be able to write at the same place, e.g. its scratch
   * directory: each is bind-mounted onto itself with the flags it has on the host, so it stays
   * writable under `readOnlyRoot` (mounts beneath keep their own flags). Taken before `hide`: one
   * inside a hidden directory stays reachable there (the directories leading to it are made on the
   * hidden tmpfs, mode 0711: nothing in them can be listed), while a hidden directory inside a
   * writable path is refused (TypeError, or SpawnError stage "mount", EINVAL, when symlinks hide
   * it from the addon's check). Put back after the private /tmp: with `privateTmp`, a path under
   * /tmp, /var/tmp or /dev/shm fails (ENOENT). Needs `mount`.
   */
  writable?: readonly string[];
}
