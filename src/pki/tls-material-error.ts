// The error of an unusable TLS file, in a module of its own so that a program can tell it apart
// (instanceof) without loading the certificate parser (job-cli's start-up, issue 17).
import { JobworkerError } from '../errors';

export type TlsMaterialProblem =
  | 'missing'
  | 'unreadable'
  | 'not-pem'
  | 'invalid'
  | 'encrypted-key'
  | 'not-yet-valid'
  | 'expired'
  | 'key-mismatch'
  | 'untrusted'
  | 'not-a-ca'
  | 'wrong-usage'
  | 'no-identity';

/** A TLS file that cannot be used: `file` is its path, `problem` a stable code, the message says why. */
export class TlsMaterialError extends JobworkerError {
  constructor(
    readonly file: string,
    readonly problem: TlsMaterialProblem,
    message: string,
  ) {
    super('failed-precondition', message);
  }
}
