// Bounds on request fields that both sides know: the server refuses a request past them
// (INVALID_ARGUMENT naming the field), and job-cli refuses the flag that would set it before any
// call. Documented in docs/api.md ("Bounds").
export const REQUEST_BOUNDS = {
  /** StopJob.grace_ms: one hour. */
  maxGraceMs: 3_600_000,
  /** ListJobs.page_size; 0 asks for defaultPageSize. */
  maxPageSize: 1000,
  defaultPageSize: 100,
  /** StreamLogs.tail_lines. */
  maxTailLines: 100_000,
  /** GetIdentityUsage.identity: an identity is a certificate name, at most this many bytes. */
  maxIdentityBytes: 256,
} as const;
