// Real clients (node-postgres, postgres.js, psql) against a server made of the startup framer, the
// backend writers and the message tap: they accept the handshake and read our errors as written.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import postgres from 'postgres';
import { createMessageTap } from '../../proxy/relay/message-tap.js';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  encryptionRefused,
  errorResponse,
  parameterStatus,
  readyForQuery,
} from '../../proxy/wire/backend-writer.js';
import { FrontendType } from '../../proxy/wire/message-types.js';
import { createStartupFramer } from '../../proxy/wire/startup-framer.js';
import type { StartupMessage } from '../../proxy/wire/startup-framer.js';
import { SqlState } from '../../proxy/wire/sqlstate.js';
import { decodeFrontendMessage } from '../../proxy/wire/frontend-decode.js';
import type { FrontendMessage } from '../../proxy/wire/frontend-decode.js';
import { pgInfo } from '../helpers/postgres.js';

interface Login {
  events: string[];
  startup?: StartupMessage;
  password?: string;
  after: FrontendMessage[];
}

const logins: Login[] = [];
let server: Server;
let port = 0;

// One connection: answer encryption requests with 'N', ask for a cleartext password, then either
// refuse (user "fatal") or complete the login and answer every statement with an ERROR.
function serve(sock: Socket): void {
  const login: Login = { events: [], after: [] };
  logins.push(login);
  sock.on('error', () => {});
  const framer = createStartupFramer();
  const tap = createMessageTap({
    maxPrefix: 1024,
    interesting: () => true,
    onMessage(msg) {
      const decoded = decodeFrontendMessage(msg);
      login.after.push(decoded);
      if (msg.type === FrontendType.query) {
        sock.write(Buffer.concat([errorResponse({ severity: 'ERROR', code: SqlState.featureNotSupported, message: 'no statements here' }), readyForQuery('I')]));
      } else if (msg.type === FrontendType.parse) {
        sock.write(errorResponse({ severity: 'ERROR', code: SqlState.featureNotSupported, message: 'no statements here' }));
      } else if (msg.type === FrontendType.sync) {
        sock.write(readyForQuery('I'));
      } else if (msg.type === FrontendType.terminate) {
        sock.end();
      }
    },
  });
  let relaying = false;
  sock.on('data', (chunk: Buffer) => {
    if (relaying) {
      tap.push(chunk);
      return;
    }
    for (const ev of framer.push(chunk)) {
      login.events.push(ev.kind);
      if (ev.kind === 'sslRequest' || ev.kind === 'gssEncRequest') {
        sock.write(encryptionRefused());
        framer.continuePlaintext();
      } else if (ev.kind === 'startup') {
        login.startup = ev;
        sock.write(authenticationCleartextPassword());
      } else if (ev.kind === 'password') {
        login.password = ev.password;
        const user = login.startup?.params.get('user') ?? '';
        if (user === 'fatal') {
          sock.end(errorResponse({ severity: 'FATAL', code: SqlState.invalidPassword, message: `token authentication failed for user "${user}"` }));
          return;
        }
        sock.write(
          Buffer.concat([
            authenticationOk(),
            parameterStatus('server_version', '15.4'),
            parameterStatus('server_encoding', 'UTF8'),
            parameterStatus('client_encoding', 'UTF8'),
            parameterStatus('DateStyle', 'ISO, MDY'),
            parameterStatus('integer_datetimes', 'on'),
            parameterStatus('standard_conforming_strings', 'on'),
            parameterStatus('session_authorization', user),
            backendKeyData(4242, 0x5eed),
            readyForQuery('I'),
          ]),
        );
        relaying = true;
        const rest = framer.takeRest();
        if (rest.length > 0) tap.push(rest);
      } else if (ev.kind === 'violation') {
        sock.end(errorResponse({ severity: 'FATAL', code: ev.error.sqlstate, message: ev.error.message }));
      }
    }
  });
}

beforeAll(async () => {
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function last(): Login {
  const l = logins.at(-1);
  if (l === undefined) throw new Error('no login');
  return l;
}

describe('node-postgres', () => {
  it('logs in, reads BackendKeyData and parameters, gets ERROR per statement, and terminates', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'alice@corp.com', database: 'app', password: 'the.token', application_name: 'wire-test' });
    await client.connect();
    const l = last();
    expect(l.events).toEqual(['startup', 'password']);
    expect(l.startup?.params.get('user')).toBe('alice@corp.com');
    expect(l.startup?.params.get('database')).toBe('app');
    expect(l.startup?.params.get('application_name')).toBe('wire-test');
    expect(l.password).toBe('the.token');
    const internals = client as unknown as { processID: number; secretKey: number };
    expect(internals.processID).toBe(4242);
    expect(internals.secretKey).toBe(0x5eed);
    await expect(client.query('select 1')).rejects.toMatchObject({ code: '0A000', severity: 'ERROR', message: 'no statements here' });
    // An ERROR leaves the session usable; the extended protocol goes Parse .. Sync.
    await expect(client.query('select $1::int', [1])).rejects.toMatchObject({ code: '0A000' });
    await client.end();
    expect(l.after.map((m) => m.kind)).toEqual(['query', 'parse', 'bind', 'describe', 'execute', 'sync', 'terminate']);
    expect(l.after[0]).toEqual({ kind: 'query', text: 'select 1', truncated: false });
  });

  it('reports our FATAL with its SQLSTATE and message', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'fatal', database: 'app', password: 'bad' });
    await expect(client.connect()).rejects.toMatchObject({ code: '28P01', severity: 'FATAL', message: 'token authentication failed for user "fatal"' });
  });
});

describe('postgres.js', () => {
  it('logs in and reads our ERROR; reads our FATAL', async () => {
    const sql = postgres({ host: '127.0.0.1', port, user: 'bob', database: 'app', password: 'tok', fetch_types: false, max: 1, onnotice: () => {} });
    try {
      await expect(sql`select 1`).rejects.toMatchObject({ code: '0A000', message: 'no statements here' });
      expect(last().password).toBe('tok');
    } finally {
      await sql.end({ timeout: 1 });
    }
    const bad = postgres({ host: '127.0.0.1', port, user: 'fatal', database: 'app', password: 'tok', fetch_types: false, max: 1 });
    try {
      await expect(bad`select 1`).rejects.toMatchObject({ code: '28P01', severity: 'FATAL' });
    } finally {
      await bad.end({ timeout: 1 });
    }
  });
});

describe('psql (libpq)', () => {
  function psql(user: string, sslmode: string): Promise<{ code: number; stderr: string }> {
    const local = join(pgInfo().binDir, 'psql');
    const bin = existsSync(local) ? local : 'psql';
    return new Promise((resolve) => {
      execFile(
        bin,
        ['-X', '-w', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', 'app', '-c', 'select 1'],
        { env: { ...process.env, PGPASSWORD: 'psql.token', PGSSLMODE: sslmode, PGGSSENCMODE: 'disable', PGCONNECT_TIMEOUT: '5' } },
        (err, _stdout, stderr) => resolve({ code: err === null ? 0 : Number(err.code ?? 1), stderr }),
      );
    });
  }

  it('negotiates SSLRequest -> N (sslmode=prefer), logs in and prints our ERROR', async () => {
    const r = await psql('carol', 'prefer');
    expect(r.stderr).toContain('ERROR:  no statements here');
    expect(r.code).toBe(1);
    const l = last();
    expect(l.events).toEqual(['sslRequest', 'startup', 'password']);
    expect(l.password).toBe('psql.token');
    expect(l.after.map((m) => m.kind)).toEqual(['query', 'terminate']);
  });

  it('prints our FATAL', async () => {
    const r = await psql('fatal', 'disable');
    expect(r.stderr).toContain('FATAL:  token authentication failed for user "fatal"');
    expect(r.code).toBe(2);
  });

  it('an SSLRequest answered N under sslmode=require ends without a startup packet', async () => {
    const r = await psql('dave', 'require');
    expect(r.stderr).toContain('server does not support SSL');
    expect(last().events).toEqual(['sslRequest']);
  });
});
