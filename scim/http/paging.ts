// List query parameters of RFC 7644 §3.4.2.4 (startIndex, count) and the ListResponse envelope.
import { ScimError, ScimType } from '../errors.js';

export const LIST_RESPONSE_URN = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

/** D17: the page size when the client gives no `count`. */
export const DEFAULT_COUNT = 100;

/** Keeps offsets within what both stores bind as an integer; no directory is anywhere near this. */
const MAX_START_INDEX = 2_147_483_647;

export interface Paging {
  /** 1-based, >= 1. */
  startIndex: number;
  /** 0..maxResults. */
  count: number;
}

function integerParam(name: string, raw: string): number {
  // D17: anything but an optionally signed decimal integer is 400 invalidValue.
  if (!/^[+-]?[0-9]{1,30}$/.test(raw)) {
    throw new ScimError(400, ScimType.invalidValue, `${name} must be an integer`);
  }
  return Number(raw);
}

/**
 * Parses `startIndex` and `count` (RFC 7644 §3.4.2.4): startIndex < 1 is 1, count < 0 is 0,
 * count above `maxResults` is clamped to it, non-integers are 400 invalidValue.
 */
export function parsePaging(q: { startIndex?: string | undefined; count?: string | undefined }, maxResults: number): Paging {
  let startIndex = q.startIndex === undefined ? 1 : integerParam('startIndex', q.startIndex);
  let count = q.count === undefined ? Math.min(DEFAULT_COUNT, maxResults) : integerParam('count', q.count);
  startIndex = Math.min(Math.max(startIndex, 1), MAX_START_INDEX);
  count = Math.min(Math.max(count, 0), maxResults);
  return { startIndex, count };
}

/** The RFC 7644 §3.4.2 ListResponse. `Resources` is always present (`[]` when empty). */
export function listResponse(total: number, startIndex: number, resources: Record<string, unknown>[]): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE_URN],
    totalResults: total,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}
