// What a job id looks like: the Worker makes them with randomUUID(), the state directory keeps only
// records and logs named by one, the server refuses anything else before a lookup, and job-cli tells
// a whole id from the start of one. Dependency-free, so every layer can import it.

/** A lower-case UUID, as `crypto.randomUUID()` makes them. */
export const JOB_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isJobId(text: string): boolean {
  return JOB_ID_PATTERN.test(text);
}
