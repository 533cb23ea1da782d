// A fetch-compatible HTTP client over node:http(s) for talking to the OIDC issuer: an extra trusted CA,
// a response size cap and an overall timeout. Node 20's global fetch cannot take a CA, hence this file.
import http from 'node:http';
import https from 'node:https';
import { rootCertificates } from 'node:tls';

/** Options for {@link createBoundedFetch}. */
export interface BoundedFetchOptions {
  /** Extra PEM CA certificate(s), trusted in addition to Node's bundled roots. */
  ca?: string;
  /** Responses larger than this are refused. Discovery documents and JWKS are a few KiB. */
  maxResponseBytes?: number;
  /** Whole request, connect to last body byte. */
  timeoutMs?: number;
}

/** A `fetch` that also owns keep-alive sockets, released by `close()`. */
export type BoundedFetch = typeof fetch & { close(): void };

/** Raised when the peer sends more than `maxResponseBytes`. */
export class ResponseTooLargeError extends Error {
  override readonly name = 'ResponseTooLargeError';
}

// 1 MiB: a JWKS with dozens of RSA-4096 keys is still under 100 KiB.
const DEFAULT_MAX_RESPONSE_BYTES = 1 << 20;
const DEFAULT_TIMEOUT_MS = 5_000;

/**
 * Creates a `fetch` over node:http(s). Differences from the global fetch, all deliberate:
 * redirects are never followed (the 3xx response is returned, as with `redirect: 'manual'`);
 * bodies may be a string, URLSearchParams, ArrayBuffer or a typed array; the response is buffered
 * whole and capped at `maxResponseBytes`.
 */
export function createBoundedFetch(opts: BoundedFetchOptions = {}): BoundedFetch {
  const maxBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // `ca` replaces Node's root store, so the bundled roots are passed along with the extra CA.
  const httpsAgent = new https.Agent({
    keepAlive: true,
    maxSockets: 16,
    minVersion: 'TLSv1.2',
    ...(opts.ca !== undefined ? { ca: [...rootCertificates, opts.ca] } : {}),
  });
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  async function boundedFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const req = await normalizeRequest(input, init);
    req.signal?.throwIfAborted();
    const isHttps = req.url.protocol === 'https:';
    if (!isHttps && req.url.protocol !== 'http:') throw new TypeError(`unsupported URL scheme ${req.url.protocol}`);

    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      const outgoing = (isHttps ? https : http).request(req.url, {
        method: req.method,
        headers: req.headers,
        agent: isHttps ? httpsAgent : httpAgent,
      });
      const finish = (err: unknown, res?: Response): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.signal?.removeEventListener('abort', onAbort);
        if (err !== undefined) {
          outgoing.destroy();
          reject(err);
        } else if (res !== undefined) {
          resolve(res);
        }
      };
      const onAbort = (): void => finish(req.signal?.reason ?? new DOMException('request aborted', 'AbortError'));
      const timer = setTimeout(
        () => finish(new DOMException(`request to ${req.url.origin} timed out after ${timeoutMs} ms`, 'TimeoutError')),
        timeoutMs,
      );
      req.signal?.addEventListener('abort', onAbort, { once: true });

      outgoing.on('error', (err) => finish(err));
      outgoing.on('response', (incoming) => {
        const status = incoming.statusCode ?? 0;
        if (status < 200 || status > 599) {
          finish(new TypeError(`unexpected HTTP status ${status}`));
          return;
        }
        const declared = Number(incoming.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          finish(new ResponseTooLargeError(`response of ${declared} bytes exceeds the ${maxBytes}-byte limit`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        incoming.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            finish(new ResponseTooLargeError(`response exceeds the ${maxBytes}-byte limit`));
            incoming.destroy();
            return;
          }
          chunks.push(chunk);
        });
        incoming.on('error', (err) => finish(err));
        incoming.on('end', () => {
          if (settled) return;
          const headers = new Headers();
          const raw = incoming.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] as string, raw[i + 1] as string);
          // Fetch forbids a body on these statuses.
          const body = status === 204 || status === 205 || status === 304 ? null : new Uint8Array(Buffer.concat(chunks));
          finish(undefined, new Response(body, { status, statusText: incoming.statusMessage ?? '', headers }));
        });
      });
      outgoing.end(req.body);
    });
  }

  return Object.assign(boundedFetch, {
    close(): void {
      httpsAgent.destroy();
      httpAgent.destroy();
    },
  }) as BoundedFetch;
}

interface NormalizedRequest {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | Buffer | undefined;
  signal: AbortSignal | undefined;
}

async function normalizeRequest(input: string | URL | Request, init: RequestInit): Promise<NormalizedRequest> {
  let url: URL;
  let method = init.method;
  let headers: Headers;
  let body: unknown = init.body;
  let signal = init.signal ?? undefined;
  if (input instanceof Request) {
    url = new URL(input.url);
    method ??= input.method;
    headers = new Headers(init.headers ?? input.headers);
    if (body === undefined && input.body !== null) body = await input.arrayBuffer();
    signal ??= input.signal;
  } else {
    url = new URL(input);
    headers = new Headers(init.headers);
  }
  let encoded: string | Buffer | undefined;
  if (body === undefined || body === null) {
    encoded = undefined;
  } else if (typeof body === 'string') {
    encoded = body;
    if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
  } else if (body instanceof URLSearchParams) {
    encoded = body.toString();
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
  } else if (body instanceof ArrayBuffer) {
    encoded = Buffer.from(body);
  } else if (ArrayBuffer.isView(body)) {
    encoded = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } else {
    throw new TypeError('unsupported request body type');
  }
  return {
    url,
    method: (method ?? 'GET').toUpperCase(),
    headers: Object.fromEntries(headers),
    body: encoded,
    signal,
  };
}
