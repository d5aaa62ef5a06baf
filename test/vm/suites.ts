// The test files that `npm run test:v2` runs inside the cgroup v2 VM, in this order, once per layout.
//
// Paths are globs relative to the repository root, over the COMPILED files in dist/ (the VM runs
// what `npx tsc -p .` emitted). `*` and `?` match within one path segment, `**` any number of
// segments. A glob that matches nothing is fine (the suite has not been written yet); the run fails
// only if the whole list matches nothing. To add a suite, add a line here: nothing else to wire.
//
// Every file listed runs as root, alone, in its own process, with /tmp on tmpfs, a raw scratch disk
// and a scratch filesystem: see docs/testing-v2.md for what a test may rely on.
export const V2_SUITES: readonly string[] = [
  // The VM itself: pure cgroup v2, controllers, limits proven by effect with plain shell jobs.
  'dist/test/vm/v2-smoke.test.js',
  // The native core: clone3 into a cgroup, capture, exit, signals, its filesystem ops.
  'dist/test/integration/native-*.test.js',
  // The cgroup drivers: limits proven by effect (cpu.max, memory.max + memory.events, io.max, pids.max, cgroup.kill),
  // and identity slices (cgroup-slices: memory, pids, CPU and io.max shared by an identity's jobs).
  'dist/test/integration/cgroup*.test.js',
  // The job library on top of them; worker-quotas: identity quotas, pids refused at clone3 into a
  // full slice, one owner per cgroup root.
  'dist/test/integration/worker*.test.js',
  // Job isolation as an attacker tries it: writers' jobs through the real daemon over mTLS (native-isolation is above).
  'dist/test/e2e/escape.test.js',
];
