// Login path, before the token (docs/design.md §2 steps 2-3): TLS required, GSSENCRequest refused then
// SSLRequest, PostgreSQL 17 direct TLS with and without ALPN, NegotiateProtocolVersion, malformed
// startups, a query pipelined behind the password, and bytes smuggled in before the TLS answer
// (CVE-2021-23214 class), all over real sockets.
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';
import { caPem, conninfo, lastDenied, pgLoginError, psql, withPg } from './login-helpers.js';
import { authCode, errorFields, GSSENC_REQUEST, loginAndQuery, passwordFrame, queryFrame, RawClient, SSL_REQUEST, startupFrame, TERMINATE, tlsStartup } from './login-wire.js';

let stack: Stack;
let ca: string;

beforeAll(async () => {
  stack = await startStack();
  ca = caPem(stack);
  await stack.provision('tom@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

const params = () => ({ user: 'tom@corp.com', database: stack.db.name });

describe('plaintext is refused', () => {
  it('psql sslmode=disable gets FATAL "SSL connection is required"', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const r = await psql(`host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=tom@corp.com sslmode=disable`, token, ['-Atc', 'select 1']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('FATAL:  SSL connection is required');
    expect(lastDenied(stack)).toMatchObject({ reason: 'tls_required', sqlstate: '28000', requestedUser: 'tom@corp.com' });
  });

  it('pg without ssl gets 28000 before any password is asked for', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    expect(await pgLoginError({ ...stack.pgConfig('tom@corp.com', token), ssl: false })).toEqual({ code: '28000', message: 'SSL connection is required' });
    // Byte level: the FATAL is the first and only answer to a plaintext StartupMessage.
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(startupFrame(params()));
    const m = await raw.message();
    expect(m.type).toBe('E');
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '28000', M: 'SSL connection is required' });
    expect(await raw.closedWithin(3_000)).toBe(true);
  });
});

describe('GSSENCRequest, then SSLRequest', () => {
  it('raw: GSSENCRequest is answered N, the SSLRequest that follows S, and the login works', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(GSSENC_REQUEST);
    expect(await raw.byte()).toBe('N');
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    raw.write(startupFrame(params()));
    const auth = await raw.message();
    expect([auth.type, authCode(auth)]).toEqual(['R', 3]);
    expect(await loginAndQuery(raw, token, 'select current_user')).toBe(stack.roles.reader);
    raw.destroy();
  });

  it('psql gssencmode=prefer sslmode=require logs in', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const r = await psql(`host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=tom@corp.com gssencmode=prefer sslmode=require`, token, ['-Atc', 'select current_user']);
    expect(r).toMatchObject({ exitCode: 0, stdout: `${stack.roles.reader}\n` });
  });

  it('a second SSLRequest inside TLS is a protocol violation', async () => {
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    raw.write(SSL_REQUEST);
    const m = await raw.message();
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01', M: 'duplicate encryption request' });
    expect(await raw.closedWithin(3_000)).toBe(true);
  });
});

describe('PostgreSQL 17 direct TLS', () => {
  it('raw tls.connect with ALPN postgresql: StartupMessage, password, query', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const raw = await RawClient.directTls(stack.proxyPort, { ca, servername: 'localhost', ALPNProtocols: ['postgresql'] });
    expect((raw.socket as TLSSocket).alpnProtocol).toBe('postgresql');
    raw.write(startupFrame(params()));
    const auth = await raw.message();
    expect([auth.type, authCode(auth)]).toEqual(['R', 3]);
    expect(await loginAndQuery(raw, token, 'select session_user')).toBe(stack.roles.reader);
    raw.destroy();
    const start = stack.auditEvents().filter((e) => e['type'] === 'session.start').at(-1);
    expect(start).toMatchObject({ tls: { version: expect.stringMatching(/^TLSv1\.[23]$/) } });
  });

  it('postgres.js sslnegotiation=direct', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const sql = postgres({ host: 'localhost', port: stack.proxyPort, database: stack.db.name, user: 'tom@corp.com', pass: token, ssl: { ca, servername: 'localhost' }, sslnegotiation: 'direct', max: 1 } as postgres.Options<Record<string, never>>);
    try {
      const [row] = await sql`select current_user as u`;
      expect(row).toEqual({ u: stack.roles.reader });
    } finally {
      await sql.end();
    }
  });

  it.each([
    // No ALPN: the handshake completes (TLS 1.3 lets the client finish first), then the proxy closes.
    ['without ALPN', undefined, true],
    // No protocol in common: the TLS layer itself refuses (alert no_application_protocol, RFC 7301 §3.2).
    ['with another ALPN protocol only', ['http/1.1'], false],
  ])('%s the connection is closed without a byte of PostgreSQL protocol', async (_name, alpn, completes) => {
    const sock = tlsConnect({ host: '127.0.0.1', port: stack.proxyPort, ca, servername: 'localhost', ...(alpn ? { ALPNProtocols: alpn } : {}) });
    const got: Buffer[] = [];
    let handshake = false;
    let error: Error | undefined;
    sock.on('data', (d: Buffer) => got.push(d));
    sock.on('error', (err) => (error = err));
    sock.on('secureConnect', () => {
      handshake = true;
      sock.write(startupFrame(params()));
    });
    const closed = await Promise.race([
      new Promise((r) => sock.once('close', () => r(true))),
      new Promise((r) => setTimeout(() => r(false), 3_000)),
    ]);
    sock.destroy();
    expect(closed).toBe(true);
    expect(handshake).toBe(completes);
    if (!completes) expect(error?.message).toMatch(/no application protocol/);
    expect(Buffer.concat(got)).toEqual(Buffer.alloc(0));
  });
});

describe('pipelining', () => {
  it('a query sent in the same write as the password runs once the login completes', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const { client } = await tlsStartup(stack.proxyPort, ca, params());
    client.write(Buffer.concat([passwordFrame(token), queryFrame('select current_user'), TERMINATE]));
    const login = await client.until('Z');
    expect(login.map((m) => m.type).filter((t) => t !== 'S')).toEqual(['R', 'K', 'Z']);
    const result = await client.until('Z');
    expect(result.map((m) => m.type)).toEqual(['T', 'D', 'C', 'Z']);
    expect(result[1]!.body.toString('utf8', 6)).toBe(stack.roles.reader);
    expect(await client.closedWithin(3_000)).toBe(true);
  });
});

describe('NegotiateProtocolVersion', () => {
  it('protocol 3.1 with a _pq_ option: v names minor 0 and the option, then the login works', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const { client, first } = await tlsStartup(stack.proxyPort, ca, { ...params(), '_pq_.x': 'on' }, 1);
    expect(first.map((m) => m.type)).toEqual(['v', 'R']);
    const v = first[0]!.body;
    // The whole version word with the newest minor, as PostgreSQL sends PG_PROTOCOL_LATEST (and
    // libpq 18 compares it as a version): 3.0.
    expect([v.readUInt16BE(0), v.readUInt16BE(2)]).toEqual([3, 0]);
    expect(v.readInt32BE(4)).toBe(1);
    expect(v.toString('utf8', 8)).toBe('_pq_.x\0');
    expect(authCode(first[1]!)).toBe(3);
    expect(await loginAndQuery(client, token, 'select current_user')).toBe(stack.roles.reader);
    client.destroy();
  });

  it('protocol 3.2 without options: v with minor 0 and no options', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const { client, first } = await tlsStartup(stack.proxyPort, ca, params(), 2);
    expect(first.map((m) => m.type)).toEqual(['v', 'R']);
    const v = first[0]!.body;
    expect([v.readUInt16BE(0), v.readUInt16BE(2), v.readInt32BE(4), v.length]).toEqual([3, 0, 0, 8]);
    expect(await loginAndQuery(client, token, 'select 42')).toBe('42');
    client.destroy();
  });

  it('protocol 3.0 gets no v', async () => {
    const { client, first } = await tlsStartup(stack.proxyPort, ca, params(), 0);
    expect(first.map((m) => m.type)).toEqual(['R']);
    client.destroy();
  });
});

describe('malformed startups inside TLS', () => {
  it('no user: 28000 "no PostgreSQL user name specified in startup packet"', async () => {
    const { client, first } = await tlsStartup(stack.proxyPort, ca, { database: stack.db.name });
    expect(first.map((m) => m.type)).toEqual(['E']);
    expect(errorFields(first[0]!.body)).toMatchObject({ S: 'FATAL', C: '28000', M: 'no PostgreSQL user name specified in startup packet' });
    expect(await client.closedWithin(3_000)).toBe(true);
  });

  it('an empty database means the one named like the user, in the refusal and in the audit log', async () => {
    const token = await stack.tokenFor('tom@corp.com');
    const { client, first } = await tlsStartup(stack.proxyPort, ca, { user: 'tom@corp.com', database: '' });
    expect(authCode(first.at(-1)!)).toBe(3);
    client.write(passwordFrame(token));
    const m = await client.message();
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '28000', M: 'no role grants "tom@corp.com" access to database "tom@corp.com"' });
    // Bug fixed: the audit event said database "" while the decision was about "tom@corp.com".
    expect(lastDenied(stack)).toMatchObject({ reason: 'no_entitlement', database: 'tom@corp.com' });
  });

  it('protocol 2.0: 0A000 naming the versions rolegate speaks', async () => {
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    const v3 = startupFrame(params());
    v3.writeUInt32BE(2 << 16, 4);
    raw.write(v3);
    const m = await raw.message();
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '0A000', M: 'unsupported frontend protocol 2.0: server supports 3.0 to 3.0' });
    expect(await raw.closedWithin(3_000)).toBe(true);
  });

  it('a parameter repeated with another value is refused (the proxy and the server would read different values)', async () => {
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(SSL_REQUEST);
    expect(await raw.byte()).toBe('S');
    await raw.startTls({ ca, servername: 'localhost' });
    const body = Buffer.from(`user\0tom@corp.com\0database\0${stack.db.name}\0user\0${stack.roles.writer}\0\0`);
    const frame = Buffer.alloc(8 + body.length);
    frame.writeInt32BE(frame.length, 0);
    frame.writeInt32BE(3 << 16, 4);
    body.copy(frame, 8);
    raw.write(frame);
    const m = await raw.message();
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01', M: 'duplicate parameter in startup packet' });
    expect(await raw.closedWithin(3_000)).toBe(true);
  });
});

describe('bytes before the TLS answer (CVE-2021-23214 class)', () => {
  it.each([
    ['SSLRequest', SSL_REQUEST, 'received unencrypted data after SSL request'],
    ['GSSENCRequest', GSSENC_REQUEST, 'received unencrypted data after GSSAPI encryption request'],
  ])('%s followed at once by a StartupMessage: FATAL 08P01 in plaintext, closed', async (_name, request, text) => {
    const raw = await RawClient.tcp(stack.proxyPort);
    // One write, so both arrive together, before the proxy could answer.
    raw.write(Buffer.concat([request, startupFrame(params())]));
    // No 'S'/'N' before it: the first byte on the wire starts the ErrorResponse.
    const m = await raw.message();
    expect(m.type).toBe('E');
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01', M: text });
    expect(await raw.closedWithin(3_000)).toBe(true);
    expect(lastDenied(stack)).toMatchObject({ reason: 'protocol_violation:data_after_encryption_request', sqlstate: '08P01' });
  });

  it('an HTTP request smuggled after SSLRequest is refused the same way; the process keeps serving', async () => {
    const raw = await RawClient.tcp(stack.proxyPort);
    raw.write(Buffer.concat([SSL_REQUEST, Buffer.from('GET / HTTP/1.1\r\n\r\n')]));
    const m = await raw.message();
    expect(m.type).toBe('E');
    expect(errorFields(m.body)).toMatchObject({ S: 'FATAL', C: '08P01', M: 'received unencrypted data after SSL request' });
    expect(await raw.closedWithin(3_000)).toBe(true);

    const token = await stack.tokenFor('tom@corp.com');
    const rows = await withPg(stack.pgConfig('tom@corp.com', token), async (c) => (await c.query('select 1 as one')).rows);
    expect(rows).toEqual([{ one: 1 }]);
    const r = await psql(conninfo(stack, 'tom@corp.com'), token, ['-Atc', 'select 2']);
    expect(r).toMatchObject({ exitCode: 0, stdout: '2\n' });
  });
});
