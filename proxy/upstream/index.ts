// Public surface of the upstream side: log in to PostgreSQL as a role, cancel a backend's query.

export { connectUpstream } from './connect.js';
export type { BackendKey, UpstreamConnection, UpstreamCredentials, UpstreamLoginOptions } from './connect.js';
export { sendCancel } from './cancel.js';
export { sayGoodbye } from './farewell.js';
export type { CancelOptions } from './cancel.js';
export { UpstreamError, UpstreamErrorCode, UpstreamServerError } from './errors.js';
export { TlsMode, directReadsOf } from './transport.js';
export type { ClientCertificate, DirectReads, UpstreamTls } from './transport.js';
