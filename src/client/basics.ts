// The part of the client's face that loads neither gRPC, the generated code nor the certificate
// parser: request bounds, state names, errors. job-cli imports its values from here and loads the
// connection itself (./client.ts) only when a command connects, so that `job-cli --version` or a
// usage error costs little more than starting Node (issue 17). Types come from ./index.ts as usual.
export { REQUEST_BOUNDS } from '../api/request-bounds';
export { JOB_STATE_NAMES } from '../api/job-state-names';
export { ClientError, StatusCode } from './client-error';
export { TlsMaterialError } from '../pki/tls-material-error';
