// PKI for jobworker: a CA, server certificates, client certificates carrying roles, and loading
// them back with validation. See docs/security.md.
export {
  createCa,
  issueClientCertificate,
  issueNatsClientCertificate,
  issueServerCertificate,
  randomSerialNumber,
  CLOCK_SKEW_MS,
  DEFAULT_VALIDITY_DAYS,
  type CaOptions,
  type CertificateAuthority,
  type ClientCertificateOptions,
  type IssuedCertificate,
  type ServerCertificateOptions,
  type ValidityOptions,
} from './issue';
export { DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS, type KeyAlgorithm } from './keys';
export {
  CERTIFICATE_MODE,
  FileExistsError,
  PRIVATE_KEY_MODE,
  writePemFile,
  writePemFiles,
  type PemFilePaths,
  type WriteOptions,
} from './files';
export {
  loadCa,
  loadClientTlsMaterial,
  loadServerTlsMaterial,
  loadTlsMaterial,
  EXPIRY_WARNING_DAYS,
  TlsMaterialError,
  type LoadOptions,
  type TlsFilePaths,
  type TlsMaterial,
  type TlsMaterialProblem,
  type TlsUse,
} from './load';
export { CertificateIdentityError, identityFromCertificate, type CertificateIdentity } from './identity';
export { TLS_POLICY } from './tls-policy';
export { decodeRoles, encodeRoles, isRole, JOBWORKER_OID_ARC, ROLES, ROLES_EXTENSION_OID, type Role } from './roles';
