// Data volumes for heavy tests. Under an emulated CPU (the cgroup v2 VM without KVM runs code 3-25x
// slower) they shrink, so the same assertions still run in bounded time; on real hardware they are
// what the issues ask for.
export const emulated = process.env.JOBWORKER_TEST_EMULATED === '1';

/** `full` on real hardware, `reduced` under emulation. */
export function scaled<T>(full: T, reduced: T): T {
  return emulated ? reduced : full;
}
