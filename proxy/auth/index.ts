// Public surface of token verification: the verifier, its error type and the HTTPS client it uses.
export { createTokenVerifier, MAX_TOKEN_BYTES } from './verifier.js';
export type { TokenVerifier, TokenVerifierConfig, TokenVerifierDeps, VerifiedToken } from './verifier.js';
export { TokenError, TokenErrorCode, isIssuerProblem } from './errors.js';
export { createBoundedFetch } from './http-fetch.js';
export type { BoundedFetch, BoundedFetchOptions } from './http-fetch.js';
