// The device flow's poll loop against a scripted authorization server on loopback: oidc-provider never
// answers slow_down and cannot be made to expire a code quickly, so this peer says exactly what RFC 8628
// §3.5 allows and the test checks how long rolegate waited before each poll.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createBoundedFetch } from '../../proxy/auth/http-fetch.js';
import type { BoundedFetch } from '../../proxy/auth/http-fetch.js';
import { deviceFlow } from '../../cli/login/device-flow.js';
import { LoginError, LoginErrorCode } from '../../cli/login/errors.js';
import { connectIssuer } from '../../cli/login/grants.js';

type Answer = { status: number; body: Record<string, unknown> };

const pending: Answer = { status: 400, body: { error: 'authorization_pending' } };
const slowDown: Answer = { status: 400, body: { error: 'slow_down' } };
const granted: Answer = { status: 200, body: { access_token: 'scripted-access-token', token_type: 'Bearer', expires_in: 300 } };

let server: http.Server;
let issuer: string;
let f: BoundedFetch;
let deviceAnswer: Record<string, unknown>;
let tokenAnswers: Answer[];
let tokenBodies: URLSearchParams[];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      if (req.url === '/.well-known/openid-configuration') {
        return send(200, { issuer, token_endpoint: `${issuer}/token`, device_authorization_endpoint: `${issuer}/device/auth` });
      }
      if (req.url === '/device/auth') return send(200, deviceAnswer);
      if (req.url === '/token') {
        tokenBodies.push(new URLSearchParams(raw));
        const next = tokenAnswers.shift() ?? pending;
        return send(next.status, next.body);
      }
      send(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  f = createBoundedFetch();
});
afterAll(async () => {
  f?.close();
  await new Promise((r) => server?.close(r));
});
beforeEach(() => {
  deviceAnswer = { device_code: 'dc-1', user_code: 'WDJB-MJHT', verification_uri: `${issuer}/device`, expires_in: 600, interval: 2 };
  tokenAnswers = [];
  tokenBodies = [];
});

/** Runs the flow with a sleep that records each wait and returns at once (or after `realMs`). */
async function run(opts: { realMs?: number; signal?: AbortSignal } = {}) {
  const config = await connectIssuer(new URL(issuer), 'rolegate-cli', undefined, f);
  const waits: number[] = [];
  const prompts: string[] = [];
  const result = deviceFlow(
    config,
    { scope: 'openid' },
    {
      prompt: (l) => prompts.push(l),
      signal: opts.signal ?? new AbortController().signal,
      sleep: async (ms, signal) => {
        waits.push(ms);
        signal.throwIfAborted();
        await new Promise((r) => setTimeout(r, opts.realMs ?? 0));
        signal.throwIfAborted();
      },
    },
    () => 1_000_000,
  );
  return { result, waits, prompts };
}

describe('device flow polling (RFC 8628 §3.4, §3.5)', () => {
  it('waits `interval` before every poll and adds 5 s for this and every later poll after slow_down', async () => {
    tokenAnswers = [pending, slowDown, pending, slowDown, granted];
    const { result, waits, prompts } = await run();
    await expect(result).resolves.toEqual({ accessToken: 'scripted-access-token', expiresAt: 1_000_300, refreshToken: undefined });
    expect(waits).toEqual([2000, 2000, 7000, 7000, 12000]);
    expect(prompts[0]).toBe(`Open ${issuer}/device and enter code WDJB-MJHT`);
    expect(tokenBodies.map((b) => [b.get('grant_type'), b.get('device_code'), b.get('client_id')])).toEqual(
      Array(5).fill(['urn:ietf:params:oauth:grant-type:device_code', 'dc-1', 'rolegate-cli']),
    );
  });

  it('uses 5 s when the server gives no interval', async () => {
    delete deviceAnswer['interval'];
    tokenAnswers = [pending, granted];
    const { result, waits } = await run();
    await result;
    expect(waits).toEqual([5000, 5000]);
  });

  it.each([
    ['expired_token', LoginErrorCode.expired, 'code WDJB-MJHT expired before it was approved; run rolegate login again'],
    ['access_denied', LoginErrorCode.denied, 'the request with code WDJB-MJHT was denied at the issuer'],
  ])('stops polling at %s', async (error, code, message) => {
    tokenAnswers = [pending, { status: 400, body: { error } }, granted];
    const { result } = await run();
    await expect(result).rejects.toMatchObject({ code, message });
    expect(tokenBodies).toHaveLength(2);
  });

  it('gives up by itself when expires_in has passed, even if the server keeps saying pending', async () => {
    deviceAnswer['expires_in'] = 1;
    const t0 = Date.now();
    const { result } = await run({ realMs: 100 });
    const err = await result.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoginError);
    expect((err as LoginError).code).toBe(LoginErrorCode.expired);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(tokenBodies.length).toBeGreaterThan(3);
  });

  it('strips control characters from what the server asks us to print', async () => {
    deviceAnswer['user_code'] = 'AB\u001b[2JCD';
    deviceAnswer['verification_uri'] = `${issuer}/device\u001b]0;pwned\u0007`;
    tokenAnswers = [granted];
    const { result, prompts } = await run();
    await result;
    expect(prompts.join('\n')).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    expect(prompts[0]).toBe(`Open ${issuer}/device ]0;pwned and enter code AB [2JCD`);
  });

  it('an answer that is not an OAuth error ends the flow with the error (no endless polling)', async () => {
    tokenAnswers = [{ status: 500, body: { oops: true } }];
    const { result } = await run();
    await expect(result).rejects.toThrow();
    expect(tokenBodies).toHaveLength(1);
  });
});
