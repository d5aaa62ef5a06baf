// A pool job runs on one daemon of its pool; StreamLogs and StopJob for it are answered there. Any
// other daemon answers FAILED_PRECONDITION naming that daemon, with its address also in this
// trailing metadata key, which the client follows with the same certificate (docs/fleet.md).
export const RUNNER_ADDRESS_METADATA = 'jobworker-runner-address';
