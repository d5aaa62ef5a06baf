// cgroup v1 pids controller: the same pids.max / pids.current files as on v2.
export { pidsStats, pidsWrites } from '../v2/pids';
