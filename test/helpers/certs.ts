// Certificates for tests: re-exports the demo's openssl-based CA helpers.
export { createCertificateAuthority, issueCert } from '../../demo/certs.js';
export type { CertificateAuthority, IssuedCert } from '../../demo/certs.js';
