// SCIM errors meant for the peer (RFC 7644 §3.12): a stable HTTP status, an optional scimType and a
// public detail. Anything that is not a ScimError becomes a generic 500 body with no internal text.
import { CodedError } from '../lib/coded-error.js';

/** The scimType values of RFC 7644 §3.12, table 9, plus `sensitive`. */
export const ScimType = {
  invalidFilter: 'invalidFilter',
  tooMany: 'tooMany',
  uniqueness: 'uniqueness',
  mutability: 'mutability',
  invalidSyntax: 'invalidSyntax',
  invalidPath: 'invalidPath',
  noTarget: 'noTarget',
  invalidValue: 'invalidValue',
  invalidVers: 'invalidVers',
  sensitive: 'sensitive',
} as const;
export type ScimType = (typeof ScimType)[keyof typeof ScimType];

export const SCIM_ERROR_URN = 'urn:ietf:params:scim:api:messages:2.0:Error';

/**
 * An error whose status, scimType and detail are safe to send to the SCIM client. Its `code` is the
 * scimType, or `http_<status>` for errors RFC 7644 gives no scimType.
 */
export class ScimError extends CodedError<ScimType | `http_${number}`> {
  override name = 'ScimError';
  readonly status: number;
  readonly scimType: ScimType | undefined;
  readonly detail: string;

  constructor(status: number, scimType: ScimType | undefined, detail: string, options?: { cause?: unknown }) {
    // D29: detail is never empty.
    const shown = detail.length > 0 ? detail : 'Request failed';
    super(scimType ?? `http_${status}`, detail, { ...options, publicMessage: shown });
    this.status = status;
    this.scimType = scimType;
    this.detail = shown;
  }
}

/** 400 with a scimType: the most common client error. */
export function badRequest(scimType: ScimType, detail: string): ScimError {
  return new ScimError(400, scimType, detail);
}

export function notFound(detail: string): ScimError {
  return new ScimError(404, undefined, detail);
}

/** The RFC 7644 §3.12 error body. D29: `status` is a string. */
export function scimErrorBody(err: ScimError): Record<string, unknown> {
  const body: Record<string, unknown> = {
    schemas: [SCIM_ERROR_URN],
    status: String(err.status),
    detail: err.detail,
  };
  if (err.scimType !== undefined) body.scimType = err.scimType;
  return body;
}
