// Login-phase framing and decoding: every split offset, bounded lengths, hostile bytes, and the startup/cancel encoders.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../proxy/upstream/errors.js';
import { upstreamStartup as startupMessage } from '../../proxy/upstream/startup-packet.js';
import { cancelRequest } from '../../proxy/wire/frontend-writer.js';
import {
  createFrameReader,
  decodeAuth,
  decodeBackendKeyData,
  decodeFields,
  decodeParameterStatus,
  decodeReadyForQuery,
} from '../../proxy/upstream/login-frames.js';
import type { Frame } from '../../proxy/upstream/login-frames.js';
import { md5PasswordResponse } from '../../proxy/upstream/md5.js';

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const cstr = (s: string): Buffer => Buffer.from(s + '\0');

// A typical PostgreSQL login answer, followed by bytes of the next response that must stay unread.
const LOGIN = [
  message('R', int32(0)),
  message('S', Buffer.concat([cstr('server_version'), cstr('15.8')])),
  message('N', Buffer.concat([Buffer.from('SNOTICE\0'), Buffer.from('Mhello\0'), Buffer.from([0])])),
  message('S', Buffer.concat([cstr('session_authorization'), cstr('app_reader')])),
  message('K', Buffer.concat([int32(4242), Buffer.from([1, 2, 3, 4])])),
  message('Z', Buffer.from('I')),
];
const TRAILER = message('C', cstr('SELECT 1'));
const STREAM = Buffer.concat([...LOGIN, TRAILER]);

function readAll(chunks: Buffer[]): { frames: Frame[]; rest: Buffer } {
  const reader = createFrameReader();
  const frames: Frame[] = [];
  for (const [i, chunk] of chunks.entries()) {
    reader.push(chunk);
    for (let f = reader.next(); f !== undefined; f = reader.next()) {
      frames.push({ type: f.type, body: Buffer.from(f.body) });
      // Stop at ReadyForQuery like the login does; the rest and the unread chunks are the caller's.
      if (f.type === 0x5a) return { frames, rest: Buffer.concat([reader.rest(), ...chunks.slice(i + 1)]) };
    }
  }
  return { frames, rest: Buffer.from(reader.rest()) };
}

describe('login frame reader', () => {
  const whole = readAll([STREAM]);

  it('yields each message and keeps bytes past ReadyForQuery', () => {
    expect(whole.frames.map((f) => String.fromCharCode(f.type)).join('')).toBe('RSNSKZ');
    expect(whole.rest.equals(TRAILER)).toBe(true);
  });

  it('gives the same frames and rest for a split at every offset', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      const split = readAll([STREAM.subarray(0, i), STREAM.subarray(i)]);
      expect(split.frames).toEqual(whole.frames);
      expect(split.rest.equals(TRAILER)).toBe(true);
    }
  });

  it('gives the same frames for any chunking (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(STREAM.length), { maxLength: 12 }), (cuts) => {
        const points = [...new Set([0, ...cuts, STREAM.length])].sort((a, b) => a - b);
        const chunks = points.slice(1).map((end, i) => STREAM.subarray(points[i], end));
        const got = readAll(chunks);
        expect(got.frames).toEqual(whole.frames);
        expect(got.rest.equals(TRAILER)).toBe(true);
      }),
    );
  });

  it.each([
    ['length below 4', Buffer.from([0x53, 0, 0, 0, 3])],
    ['authentication request over 2000 bytes (libpq)', Buffer.from([0x52, 0, 0, 0x07, 0xd1])],
    ['other message over 30000 bytes (libpq)', Buffer.from([0x45, 0, 0, 0x75, 0x31])],
    ['length with the sign bit set', Buffer.from([0x45, 0x80, 0, 0, 0])],
  ])('refuses %s before buffering the body', (_name, header) => {
    const reader = createFrameReader();
    reader.push(header);
    expect(() => reader.next()).toThrow(UpstreamError);
  });

  it('accepts the largest allowed lengths', () => {
    const reader = createFrameReader();
    reader.push(message('R', Buffer.concat([int32(11), Buffer.alloc(1992, 0x61)])));
    expect(reader.next()?.body.length).toBe(1996);
  });

  it('stops buffering after 1 MiB without ReadyForQuery', () => {
    const reader = createFrameReader();
    const notice = message('N', Buffer.alloc(20_000, 0x41));
    expect(() => {
      for (let i = 0; i < 60; i++) reader.push(notice);
    }).toThrow(/before ReadyForQuery/);
  });

  it('only ever throws UpstreamError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const reader = createFrameReader();
        try {
          reader.push(Buffer.from(bytes));
          for (let f = reader.next(); f !== undefined; f = reader.next()) {
            const body = f.body;
            for (const decode of [decodeAuth, decodeFields, decodeParameterStatus, decodeBackendKeyData, decodeReadyForQuery]) {
              try {
                decode(body);
              } catch (err) {
                expect(err).toBeInstanceOf(UpstreamError);
              }
            }
          }
        } catch (err) {
          expect(err).toBeInstanceOf(UpstreamError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('login message decoders', () => {
  it.each([
    ['AuthenticationOk', int32(0), { kind: 'ok' }],
    ['AuthenticationCleartextPassword', int32(3), { kind: 'cleartext' }],
    ['AuthenticationMD5Password', Buffer.concat([int32(5), Buffer.from([1, 2, 3, 4])]), { kind: 'md5', salt: Buffer.from([1, 2, 3, 4]) }],
    [
      'AuthenticationSASL',
      Buffer.concat([int32(10), cstr('SCRAM-SHA-256-PLUS'), cstr('SCRAM-SHA-256'), Buffer.from([0])]),
      { kind: 'sasl', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
    ],
    ['AuthenticationSASLContinue', Buffer.concat([int32(11), Buffer.from('r=abc,s=xx,i=1')]), { kind: 'saslContinue', data: 'r=abc,s=xx,i=1' }],
    ['AuthenticationSASLFinal', Buffer.concat([int32(12), Buffer.from('v=abc')]), { kind: 'saslFinal', data: 'v=abc' }],
    ['AuthenticationGSS', int32(7), { kind: 'unsupported', code: 7 }],
  ])('decodes %s', (_name, body, expected) => {
    expect(decodeAuth(body)).toEqual(expected);
  });

  it.each([
    ['short', Buffer.from([0, 0])],
    ['md5 salt of 3 bytes', Buffer.concat([int32(5), Buffer.from([1, 2, 3])])],
    ['Ok with trailing bytes', Buffer.concat([int32(0), Buffer.from([1])])],
    ['unterminated SASL list', Buffer.concat([int32(10), Buffer.from('SCRAM-SHA-256')])],
    ['SASL list without the final empty name', Buffer.concat([int32(10), cstr('SCRAM-SHA-256')])],
  ])('refuses an authentication request that is %s', (_name, body) => {
    expect(() => decodeAuth(body)).toThrow(UpstreamError);
  });

  it('reads the login stream as the node-postgres Parser does', () => {
    // Cross-check against node-postgres' parser: the same bytes, the same meaning.
    const parsed: BackendMessage[] = [];
    new Parser().parse(STREAM, (m) => parsed.push(m));
    const names = parsed.map((m) => m.name);
    expect(names.slice(0, 6)).toEqual([
      'authenticationOk',
      'parameterStatus',
      'notice',
      'parameterStatus',
      'backendKeyData',
      'readyForQuery',
    ]);
    const bodies = loginBodies();
    expect(decodeParameterStatus(bodies[1] as Buffer)).toEqual({ name: 'server_version', value: '15.8' });
    expect(decodeFields(bodies[2] as Buffer)).toEqual(new Map([['S', 'NOTICE'], ['M', 'hello']]));
    expect(decodeBackendKeyData(bodies[4] as Buffer)).toEqual({ processId: 4242, secretKey: Buffer.from([1, 2, 3, 4]) });
    expect((parsed[4] as unknown as { processID: number }).processID).toBe(4242);
    expect(decodeReadyForQuery(bodies[5] as Buffer)).toBe('I');
  });

  it.each([
    ['BackendKeyData shorter than 8 bytes', () => decodeBackendKeyData(Buffer.alloc(7))],
    ['BackendKeyData key over 256 bytes', () => decodeBackendKeyData(Buffer.alloc(4 + 257))],
    ['ReadyForQuery with an unknown status', () => decodeReadyForQuery(Buffer.from('X'))],
    ['ReadyForQuery of two bytes', () => decodeReadyForQuery(Buffer.from('II'))],
    ['ParameterStatus without value', () => decodeParameterStatus(cstr('a'))],
    ['ParameterStatus with trailing bytes', () => decodeParameterStatus(Buffer.concat([cstr('a'), cstr('b'), cstr('c')]))],
    ['error fields without terminator', () => decodeFields(Buffer.from('SERROR\0'))],
    ['error field value without NUL', () => decodeFields(Buffer.from('SERROR'))],
  ])('refuses %s', (_name, run) => {
    expect(run).toThrow(UpstreamError);
  });
});

function loginBodies(): Buffer[] {
  return readAll([STREAM]).frames.map((f) => f.body);
}

describe('frontend encoders', () => {
  it('encodes a StartupMessage byte for byte', () => {
    const buf = startupMessage('app_reader', 'app', { application_name: 'psql' });
    const body = 'user\0app_reader\0database\0app\0application_name\0psql\0\0';
    const expected = Buffer.concat([int32(8 + body.length), int32(196608), Buffer.from(body)]);
    expect(buf.equals(expected)).toBe(true);
  });

  it('never lets the caller override the identity, ask for replication, or inject _pq_ options', () => {
    const buf = startupMessage('r', 'd', { user: 'postgres', database: 'x', replication: 'database', '_pq_.x': '1', TimeZone: 'UTC' });
    expect(buf.subarray(8).toString('latin1')).toBe('user\0r\0database\0d\0TimeZone\0UTC\0\0');
  });

  it('does not force client_encoding (pg-protocol would append UTF8)', () => {
    const buf = startupMessage('r', 'd', { client_encoding: 'LATIN1' });
    expect(buf.toString('latin1').match(/client_encoding/g)).toHaveLength(1);
  });

  it.each([
    ['a NUL in a value (parameter injection)', { application_name: 'x\0replication\0database' }],
    ['a NUL in a key', { 'a\0b': 'x' }],
    ['an empty key', { '': 'x' }],
    ['a packet over 10000 bytes', { application_name: 'x'.repeat(10_000) }],
  ])('refuses %s', (_name, params) => {
    expect(() => startupMessage('r', 'd', params)).toThrow(UpstreamError);
  });

  it('encodes a CancelRequest like pg-protocol for a 4-byte key', async () => {
    const { serialize } = await import('pg-protocol');
    const key = Buffer.alloc(4);
    key.writeInt32BE(-123456);
    expect(cancelRequest(98765, key).equals(serialize.cancel(98765, -123456))).toBe(true);
    expect(cancelRequest(1, Buffer.alloc(32)).readInt32BE(0)).toBe(44);
  });

  it('computes the md5 response from the md5 verifier PostgreSQL stores', () => {
    // pg_authid stores 'md5' + md5(password + user); for postgres/postgres that is the widely
    // published md53175bce1d3201d16594cebf9d7eb3f9d. The reply salts that hex string.
    const salt = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
    const expected = 'md5' + createHash('md5').update('3175bce1d3201d16594cebf9d7eb3f9d').update(salt).digest('hex');
    expect(md5PasswordResponse('postgres', 'postgres', salt)).toBe(expected);
    expect(md5PasswordResponse('postgres', 'postgres', Buffer.from([0, 0, 0, 0]))).not.toBe(expected);
  });
});
