// What the host (run-v2.ts) and the runner inside the VM (inner.ts) exchange through the shared
// control directory: the host writes config.json before boot, the VM writes logs/ and summary.json.
// Both sides run the same compiled file, so the shapes cannot drift apart.

/**
 * Where the test process starts, in the VM's cgroup2 tree:
 * - `root`: in the root cgroup, as a daemon started by a minimal init would be;
 * - `delegated`: alone in a non-root cgroup (/test.slice/<nn>-<file>.service) whose parent has
 *   cpu, memory, io and pids enabled, as under systemd with Delegate=yes: code must move itself into
 *   a leaf before it can enable controllers for its children (no-internal-processes rule).
 */
export type Layout = 'root' | 'delegated';
export const LAYOUTS: readonly Layout[] = ['root', 'delegated'];

export function isLayout(value: string): value is Layout {
  return (LAYOUTS as readonly string[]).includes(value);
}

/** Mount point of the control directory inside the VM (a read-write 9p export of a host directory). */
export const CONTROL_MOUNT = '/run/jobworker-vm';
/**
 * Where the VM mounts the scratch filesystem: ext4 on the first partition of the disk whose serial
 * is FS_DISK_SERIAL. /var/tmp, as on most hosts a disk-backed place, so tests that look for "a
 * directory on a physical disk" among tmpdir, /var/tmp and cwd find it without being told.
 */
export const SCRATCH_MOUNT = '/var/tmp';
/** virtio-blk serial numbers: how the VM tells the two scratch disks apart (/sys/block/vdX/serial). */
export const RAW_DISK_SERIAL = 'jobworker-raw';
export const FS_DISK_SERIAL = 'jobworker-fs';
/** Lines starting with this on the console are the harness talking, not the tests. */
export const MARKER = '##jobworker-vm##';

export interface VmConfig {
  /** Absolute path of the checkout (same path inside the VM: the host root is the VM's root). */
  repoDir: string;
  /** Absolute path of the node binary to run the tests with. */
  nodePath: string;
  layouts: Layout[];
  /** Repository-relative paths of compiled test files, in order. */
  files: string[];
  /** The VM's CPU is emulated (qemu TCG, no KVM): tests see JOBWORKER_TEST_EMULATED=1. */
  emulated: boolean;
  /** A test file still running after this long is killed and counted as failed. */
  fileTimeoutMs: number;
  /** Extra environment for the tests (e.g. NODE_OPTIONS from the caller); the harness's own vars win. */
  extraEnv: Record<string, string>;
  /**
   * Index, in fileRuns() order, of the first file run this VM does: the earlier ones were done by
   * a VM that stalled (see run-v2.ts). 0 or absent: all.
   */
  resumeAt?: number;
}

/** Every file in every layout, in the order the runner does them (layout by layout). */
export function fileRuns(config: Pick<VmConfig, 'layouts' | 'files'>): { layout: Layout; index: number; file: string }[] {
  return config.layouts.flatMap((layout) => config.files.map((file, index) => ({ layout, index, file })));
}

/** Where the runner writes its heartbeat (its uptime in whole seconds, every 10 s) for init.sh's watchdog. */
export const HEARTBEAT_FILE = '/run/jobworker-vm-heartbeat';
/** Where init.sh's watchdog writes its session id: its processes are the harness's, not strays. */
export const WATCHDOG_SID_FILE = '/run/jobworker-vm-watchdog.sid';

export interface TestCounts {
  tests: number;
  pass: number;
  fail: number;
  skipped: number;
  todo: number;
  cancelled: number;
}

export interface FileResult {
  layout: Layout;
  file: string;
  /** The file's output, relative to the control directory: logs/<layout>/<nn>-<name>.log. */
  log: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  durationMs: number;
  /** From the spec reporter's closing lines; null if the run ended before printing them. */
  counts: TestCounts | null;
  /** Processes still running after the test process exited (killed by the harness): a failure. */
  strayProcesses: string[];
  /** Cgroups the test left behind (removed by the harness); populated ones are a failure. */
  leftoverCgroups: { path: string; populated: boolean }[];
  passed: boolean;
}

export interface VmSummary {
  /** False if the runner stopped early (then `error` says why). */
  complete: boolean;
  error?: string;
  kernel: string;
  /** Seconds since the VM kernel started, when the runner started (guest clock). */
  uptimeAtStart: number;
  /** Facts about the VM the tests ran in, for the report. */
  environment: Record<string, string>;
  results: FileResult[];
}

export function fileResultPassed(r: Omit<FileResult, 'passed'>): boolean {
  return (
    r.exitCode === 0 &&
    !r.timedOut &&
    r.strayProcesses.length === 0 &&
    r.leftoverCgroups.every((c) => !c.populated) &&
    (r.counts === null || (r.counts.fail === 0 && r.counts.cancelled === 0))
  );
}
