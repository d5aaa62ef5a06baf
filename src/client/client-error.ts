// A failed call and the gRPC status codes, in a module that does not load gRPC: a program (job-cli)
// can tell errors apart before it needs a connection (issue 17: start-up time).

/**
 * The gRPC status codes (grpc/doc/statuscodes.md: numbers fixed by the protocol), the same values as
 * grpc-js's `status`; a unit test checks that they agree.
 */
export const StatusCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusCode = (typeof StatusCode)[keyof typeof StatusCode];

const CODE_NAMES = new Map<number, string>(Object.entries(StatusCode).map(([name, code]) => [code, name]));

/** A failed call: the gRPC status code (name and number) and the server's one-line message. */
export class ClientError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
    /** For a pool job another daemon runs: where to ask (the client follows it for streams and stops). */
    readonly runnerAddress: string | null = null,
  ) {
    super(details);
    this.name = 'ClientError';
  }

  /** The code's name ('NOT_FOUND'…); its number for a code the protocol does not name. */
  get codeName(): string {
    return CODE_NAMES.get(this.code) ?? String(this.code);
  }
}
