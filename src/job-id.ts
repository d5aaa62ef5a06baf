// How a job is referred to: by its id or by its name. The Worker makes ids with randomUUID(), the
// state directory keeps only records and logs named by one, the server refuses anything else before
// a lookup, and job-cli tells a whole id from the start of one. A name is the owner's choice, and
// never looks like an id (in any case), so every field that takes one can take the other.
// Dependency-free, so every layer can import it.

/** A lower-case UUID, as `crypto.randomUUID()` makes them. */
export const JOB_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isJobId(text: string): boolean {
  return JOB_ID_PATTERN.test(text);
}

/** A job name: 1-64 of letters, digits, '_', '.', '-', starting with a letter or digit. */
export const JOB_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** What a job name may be, in words (errors quote it). */
export const JOB_NAME_RULE = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit, and not a UUID";

/** A name a job may have: of JOB_NAME_PATTERN and not a UUID in any case (job-cli takes ids in either case). */
export function isJobName(text: string): boolean {
  return JOB_NAME_PATTERN.test(text) && !JOB_ID_PATTERN.test(text.toLowerCase());
}
