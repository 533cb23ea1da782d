// Starts the real admin app (SCIM router on a real DirectoryStore) on a free loopback port for tests,
// and a small fetch wrapper that speaks to it like an IdP does.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminApp } from '../../admin/app.js';
import type { DirectoryAuditEvent } from '../../scim/audit-port.js';
import { createScimRouter } from '../../scim/http/router.js';
import { ScimService } from '../../scim/service.js';
import { openStore } from '../../scim/store/open.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import { createTestDatabase } from './postgres.js';
import { tempDir } from './tmp.js';

export type StoreKind = 'sqlite' | 'postgres';

/** For `describe.each(STORE_KINDS)`: every SCIM test runs against both stores. */
export const STORE_KINDS: readonly [StoreKind][] = [['sqlite'], ['postgres']];

/** A fresh, empty store location of the given kind and how to remove it. */
export async function freshStoreUrl(kind: StoreKind): Promise<{ url: string; cleanup(): Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = await tempDir('rolegate-scim-');
    return { url: `sqlite:${dir.path}/directory.db`, cleanup: () => dir.cleanup() };
  }
  const db = await createTestDatabase('scim');
  return { url: db.url, cleanup: () => db.drop() };
}

export interface ScimTestServer {
  /** e.g. http://127.0.0.1:40123/scim/v2 */
  baseUrl: string;
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** The first configured token. */
  token: string;
  tokens: string[];
  store: DirectoryStore;
  /** Every `directory.change` event, in order. */
  audit: DirectoryAuditEvent[];
  /** Errors the app logged instead of showing the client. */
  logged: unknown[];
  /** What the metrics hook saw. */
  requests: { method: string; status: number }[];
  close(): Promise<void>;
}

export interface StartOptions {
  kind: StoreKind;
  tokens?: string[];
  /** Lets a test put a store in front of the real one (e.g. one that fails on purpose). */
  wrapStore?: (store: DirectoryStore) => DirectoryStore;
}

/** The admin app with a fresh store of `kind`, listening on 127.0.0.1:0. */
export async function startScimServer(opts: StartOptions): Promise<ScimTestServer> {
  const location = await freshStoreUrl(opts.kind);
  const realStore = await openStore(location.url);
  const store = opts.wrapStore ? opts.wrapStore(realStore) : realStore;
  const tokens = opts.tokens ?? [randomBytes(24).toString('base64url'), randomBytes(24).toString('base64url')];
  const audit: DirectoryAuditEvent[] = [];
  const logged: unknown[] = [];
  const requests: { method: string; status: number }[] = [];
  const logger = { error: (obj: Record<string, unknown>) => void logged.push(obj.err) };
  const service = new ScimService({ store, audit: (e) => void audit.push(e) });
  const scim = createScimRouter({ service, tokens, logger, metrics: { onRequest: (method, status) => void requests.push({ method, status }) } });
  const app = createAdminApp({
    scim,
    logger,
    ready: async () => {
      try {
        await store.ping();
        return { ok: true };
      } catch {
        return { ok: false, reason: 'directory store unreachable' };
      }
    },
    metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', render: async () => `rolegate_scim_requests_total ${requests.length}\n` },
  });
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    baseUrl: `${origin}/scim/v2`,
    origin,
    token: tokens[0]!,
    tokens,
    store,
    audit,
    logged,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await realStore.close();
      await location.cleanup();
    },
  };
}

export interface ScimReply {
  status: number;
  headers: Headers;
  text: string;
  /** Parsed body, or undefined when empty or not JSON. */
  json: any;
}

export interface ScimRequest {
  body?: unknown;
  /** Raw body bytes/text sent as is (overrides `body`). */
  raw?: string | Uint8Array;
  /** Content-Type to send; `null` sends none. Default application/scim+json when there is a body. */
  contentType?: string | null;
  /** Authorization header; `null` sends none. Default `Bearer <token>`. */
  authorization?: string | null;
  headers?: Record<string, string>;
}

/** A client bound to one server: `call('GET', '/Users?filter=...')`. */
export function scimClient(srv: { baseUrl: string; token: string }) {
  return async function call(method: string, path: string, req: ScimRequest = {}): Promise<ScimReply> {
    const headers: Record<string, string> = { ...req.headers };
    const auth = req.authorization === undefined ? `Bearer ${srv.token}` : req.authorization;
    if (auth !== null) headers.authorization = auth;
    // Bytes, not a string: fetch would add `text/plain` to a string body on its own.
    let body: Uint8Array | undefined;
    if (req.raw !== undefined) body = typeof req.raw === 'string' ? new TextEncoder().encode(req.raw) : req.raw;
    else if (req.body !== undefined) body = new TextEncoder().encode(JSON.stringify(req.body));
    if (body !== undefined || req.contentType !== undefined) {
      const ct = req.contentType === undefined ? 'application/scim+json' : req.contentType;
      if (ct !== null) headers['content-type'] = ct;
    }
    const res = await fetch(`${srv.baseUrl}${path}`, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

export const SCIM_CT = 'application/scim+json; charset=utf-8';
export const ERROR_URN = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const LIST_URN = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const USER_URN = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_URN = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_URN = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

/** Whether any value inside `v` is JSON null (D28 forbids it in responses). */
export function containsNull(v: unknown): boolean {
  if (v === null) return true;
  if (typeof v !== 'object') return false;
  return Object.values(v as Record<string, unknown>).some(containsNull);
}

/**
 * Throws unless `r` is an RFC 7644 §3.12 error with this status (and scimType when given), sent as
 * SCIM JSON, with a non-empty detail (D29) and nothing that looks like a stack trace.
 */
export function assertScimError(r: ScimReply, status: number, scimType?: string): void {
  const problems: string[] = [];
  if (r.status !== status) problems.push(`status ${r.status} != ${status}`);
  if (r.headers.get('content-type') !== SCIM_CT) problems.push(`content-type ${r.headers.get('content-type')}`);
  const b = r.json as Record<string, unknown> | undefined;
  if (b === undefined) problems.push('body is not JSON');
  else {
    if (!Array.isArray(b.schemas) || b.schemas[0] !== ERROR_URN) problems.push('schemas');
    if (b.status !== String(status)) problems.push(`body status ${JSON.stringify(b.status)}`);
    if (typeof b.detail !== 'string' || b.detail.length === 0) problems.push('detail');
    if (scimType !== undefined && b.scimType !== scimType) problems.push(`scimType ${JSON.stringify(b.scimType)} != ${scimType}`);
  }
  if (/\n\s+at |node_modules|\.ts:\d/.test(r.text)) problems.push('looks like a stack trace');
  if (problems.length > 0) throw new Error(`not the expected SCIM error: ${problems.join('; ')}\n${r.text.slice(0, 500)}`);
}
