// Reading SCIM request bodies: media type (D3), size bound (D4), UTF-8 JSON with bounded nesting.
import type { NextFunction, Request, Response } from 'express';
import { ScimError, ScimType } from '../errors.js';

/** D4: 1 MiB, advertised as `bulk.maxPayloadSize` in the ServiceProviderConfig. */
export const MAX_BODY_BYTES = 1_048_576;

/** Deeper JSON than this is refused before any recursive code sees it (stack safety). */
export const MAX_JSON_DEPTH = 64;

/** How much of a refused body is read before the reply, at most: bytes of the whole body, and time. */
export interface DrainLimits {
  readonly bytes: number;
  readonly ms: number;
}

/**
 * A refused body is still read to its end (and discarded) before the 413 goes out, so that closing
 * the connection sends FIN, not RST: the kernel resets a socket closed with unread bytes, and the
 * reset can reach the client before it has read the 413. Reading is bounded, in bytes (the whole
 * body, 64 times the limit of D4) and in time, so a client cannot hold the connection with it.
 */
export const DRAIN_LIMITS: DrainLimits = Object.freeze({ bytes: 64 * 1_048_576, ms: 30_000 });

const ACCEPTED_TYPES: ReadonlySet<string> = new Set(['application/scim+json', 'application/json']);

/** The media type of a Content-Type value, lowercased, without parameters. */
function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** Depth of nested arrays/objects, computed iteratively and abandoned once past `limit`. */
export function jsonDepthExceeds(value: unknown, limit: number): boolean {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d >= limit) return true;
    const children = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) if (c !== null && typeof c === 'object') stack.push({ v: c, d: d + 1 });
  }
  return false;
}

/**
 * Answers 413 with `Connection: close` once the rest of the body has been discarded (DRAIN_LIMITS):
 * the connection ends cleanly and the client reads its 413. `read` bytes of the body are already in.
 * Past either bound the 413 goes out at once and the socket is closed with the rest unread.
 */
function refuseTooLarge(req: Request, res: Response, read: number, limit: number, drain: DrainLimits, next: NextFunction): void {
  // Closed after the reply either way: a drain cut short leaves the connection mid-request.
  res.setHeader('Connection', 'close');
  const refusal = new ScimError(413, undefined, `Request body exceeds ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (req.complete || declared > drain.bytes) {
    next(refusal);
    return;
  }
  let size = read;
  let settled = false;
  const finish = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', finish);
    req.off('error', finish);
    req.off('aborted', finish);
    req.off('close', finish);
    // Cut short (a bound, or the client went away): stop reading; the socket closes after the reply.
    if (!req.complete) req.pause();
    next(refusal);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > drain.bytes) finish();
  };
  const timer = setTimeout(finish, drain.ms);
  timer.unref();
  req.on('data', onData);
  req.on('end', finish);
  req.on('error', finish);
  req.on('aborted', finish);
  req.on('close', finish);
  req.resume();
}

/**
 * Express middleware that parses the request body as JSON into `req.body`.
 * D3: `application/scim+json` or `application/json` with any parameters, or no Content-Type at all;
 * anything else is 415. D4: more than `limit` bytes is 413 without buffering past the limit (the
 * rest is read and discarded, within `drain`, so that the client can read the 413).
 * An empty or malformed body is 400 invalidSyntax. Errors go to `next` as ScimError.
 */
export function scimJsonBody(
  limit: number = MAX_BODY_BYTES,
  drain: DrainLimits = DRAIN_LIMITS,
): (req: Request, res: Response, next: NextFunction) => void {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  return (req, res, next) => {
    const type = req.headers['content-type'];
    if (type !== undefined && !ACCEPTED_TYPES.has(mediaType(type))) {
      next(new ScimError(415, undefined, 'Content-Type must be application/scim+json or application/json'));
      return;
    }
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      next(new ScimError(415, undefined, 'Content-Encoding is not supported'));
      return;
    }
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limit) {
      refuseTooLarge(req, res, 0, limit, drain, next);
      return;
    }

    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const stop = (): boolean => {
      if (settled) return false;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onError);
      return true;
    };
    const finish = (err: ScimError | undefined): void => {
      if (stop()) next(err);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0;
        if (stop()) refuseTooLarge(req, res, size, limit, drain, next);
        return;
      }
      chunks.push(chunk);
    };
    const onError = (): void => finish(new ScimError(400, ScimType.invalidSyntax, 'Request body could not be read'));
    const onEnd = (): void => {
      if (size === 0) {
        finish(new ScimError(400, ScimType.invalidSyntax, 'A JSON request body is required'));
        return;
      }
      let parsed: unknown;
      try {
        // fatal: invalid UTF-8 is a syntax error, not silently replaced (D31 stores strings exactly).
        parsed = JSON.parse(decoder.decode(Buffer.concat(chunks, size)));
      } catch {
        finish(new ScimError(400, ScimType.invalidSyntax, 'Request body is not valid JSON'));
        return;
      }
      if (jsonDepthExceeds(parsed, MAX_JSON_DEPTH)) {
        finish(new ScimError(400, ScimType.invalidSyntax, `Request body is nested deeper than ${MAX_JSON_DEPTH} levels`));
        return;
      }
      req.body = parsed;
      finish(undefined);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onError);
  };
}
