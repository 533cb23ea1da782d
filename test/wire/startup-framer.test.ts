// The startup framer: every packet kind, every bound, every split offset, and hostile bytes.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import {
  MAX_HANDOVER_BYTES,
  MAX_PASSWORD_BODY_LENGTH,
  MAX_STARTUP_PACKET_LENGTH,
  MAX_TOKEN_BYTES,
} from '../../proxy/wire/constants.js';
import { createStartupFramer, protocolNegotiation } from '../../proxy/wire/startup-framer.js';
import type { StartupEvent, StartupFramer, StartupFramerOptions } from '../../proxy/wire/startup-framer.js';

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** An untyped packet: length word (counting itself) + body. */
function untyped(body: Buffer): Buffer {
  return Buffer.concat([int32(body.length + 4), body]);
}

function startupPacket(params: [string, string][], version = 196608): Buffer {
  const parts = [int32(version)];
  for (const [k, v] of params) parts.push(Buffer.from(`${k}\0${v}\0`));
  parts.push(Buffer.from([0]));
  return untyped(Buffer.concat(parts));
}

function cancelPacket(pid: number, secret: Buffer): Buffer {
  return untyped(Buffer.concat([int32(80877102), int32(pid), secret]));
}

function typed(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

const GSSENC = untyped(int32(80877104));
const SSL = serialize.requestSsl();

/** Feeds every chunk, returns all events and what takeRest() holds at the end. */
function run(chunks: Buffer[], options?: StartupFramerOptions): { events: StartupEvent[]; rest: Buffer; framer: StartupFramer } {
  const framer = createStartupFramer(options);
  const events: StartupEvent[] = [];
  for (const c of chunks) events.push(...framer.push(c));
  return { events, rest: framer.takeRest(), framer };
}

function violationCode(events: StartupEvent[]): string | undefined {
  const last = events.at(-1);
  return last?.kind === 'violation' ? last.error.code : undefined;
}

describe('startup packets', () => {
  it('decodes a StartupMessage written by pg-protocol, in order, without the terminator', () => {
    // pg-protocol appends client_encoding=UTF8 itself.
    const bytes = serialize.startup({ user: 'alice@corp.com', database: 'app', application_name: 'psql' });
    const { events, framer } = run([bytes]);
    expect(events).toHaveLength(1);
    const ev = events[0];
    expect(ev?.kind).toBe('startup');
    if (ev?.kind !== 'startup') return;
    expect(ev.major).toBe(3);
    expect(ev.minor).toBe(0);
    expect([...ev.params]).toEqual([
      ['user', 'alice@corp.com'],
      ['database', 'app'],
      ['application_name', 'psql'],
      ['client_encoding', 'UTF8'],
    ]);
    expect(ev.protocolOptions).toEqual([]);
    expect(protocolNegotiation(ev)).toBeUndefined();
    expect(framer.phase).toBe('password');
  });

  it('separates _pq_. protocol options and asks for negotiation on a newer minor version', () => {
    const { events } = run([startupPacket([['user', 'a'], ['_pq_.compression', 'on'], ['_pq_.x', '']], (3 << 16) | 2)]);
    const ev = events[0];
    if (ev?.kind !== 'startup') throw new Error('expected startup');
    expect(ev.minor).toBe(2);
    expect([...ev.params]).toEqual([['user', 'a']]);
    expect(ev.protocolOptions).toEqual(['_pq_.compression', '_pq_.x']);
    expect(protocolNegotiation(ev)).toEqual({ newestMinor: 0, unsupportedOptions: ['_pq_.compression', '_pq_.x'] });
    const [ev2] = run([startupPacket([['user', 'a']], (3 << 16) | 2)]).events;
    if (ev2?.kind !== 'startup') throw new Error('expected startup');
    expect(protocolNegotiation(ev2)).toEqual({ newestMinor: 0, unsupportedOptions: [] });
  });

  it('accepts a name repeated with the same value (pg-protocol repeats client_encoding)', () => {
    const [ev] = run([serialize.startup({ user: 'a', client_encoding: 'UTF8' })]).events;
    expect(ev).toMatchObject({ kind: 'startup', params: new Map([['user', 'a'], ['client_encoding', 'UTF8']]) });
  });

  it('accepts an empty parameter list and empty values', () => {
    expect(run([startupPacket([])]).events[0]).toMatchObject({ kind: 'startup', params: new Map() });
    expect(run([startupPacket([['options', '']])]).events[0]).toMatchObject({ params: new Map([['options', '']]) });
  });

  it('decodes SSLRequest and GSSENCRequest and refuses any byte before the answer (CVE-2021-23214)', () => {
    expect(run([SSL]).events).toEqual([{ kind: 'sslRequest' }]);
    expect(run([GSSENC]).events).toEqual([{ kind: 'gssEncRequest' }]);
    const same = run([Buffer.concat([SSL, serialize.startup({ user: 'a' })])]);
    expect(same.events[0]).toEqual({ kind: 'sslRequest' });
    expect(violationCode(same.events)).toBe('data_after_encryption_request');
    const later = run([SSL, Buffer.from([0])]);
    expect(violationCode(later.events)).toBe('data_after_encryption_request');
    if (later.events[1]?.kind === 'violation') {
      expect(later.events[1].error.message).toBe('received unencrypted data after SSL request');
      expect(later.events[1].error.sqlstate).toBe('08P01');
    }
  });

  it('follows GSSENCRequest -> N -> SSLRequest -> N -> StartupMessage like libpq with prefer modes', () => {
    const framer = createStartupFramer();
    expect(framer.push(GSSENC)).toEqual([{ kind: 'gssEncRequest' }]);
    framer.continuePlaintext();
    expect(framer.push(SSL)).toEqual([{ kind: 'sslRequest' }]);
    framer.continuePlaintext();
    expect(framer.push(serialize.startup({ user: 'a' }))[0]?.kind).toBe('startup');
  });

  it('refuses a second request for the same encryption, and any request inside TLS', () => {
    const framer = createStartupFramer();
    framer.push(SSL);
    framer.continuePlaintext();
    expect(violationCode(framer.push(SSL))).toBe('duplicate_encryption_request');
    expect(violationCode(run([SSL], { encrypted: true }).events)).toBe('duplicate_encryption_request');
    expect(violationCode(run([GSSENC], { encrypted: true }).events)).toBe('duplicate_encryption_request');
  });

  it('continuePlaintext outside the answer phase is a programming error, except after a violation', () => {
    expect(() => createStartupFramer().continuePlaintext()).toThrow();
    const framer = createStartupFramer();
    expect(framer.push(Buffer.concat([SSL, Buffer.from([1])])).map((e) => e.kind)).toEqual(['sslRequest', 'violation']);
    expect(() => framer.continuePlaintext()).not.toThrow();
    expect(framer.phase).toBe('closed');
  });

  it('decodes CancelRequest with a 3.0 key and with longer 3.2 keys, and bounds the key', () => {
    const c30 = run([serialize.cancel(4242, -2)]).events;
    expect(c30).toEqual([{ kind: 'cancelRequest', pid: 4242, secret: Buffer.from([0xff, 0xff, 0xff, 0xfe]) }]);
    const key32 = Buffer.alloc(32, 7);
    expect(run([cancelPacket(0xfffffffe, key32)]).events).toEqual([{ kind: 'cancelRequest', pid: 0xfffffffe, secret: key32 }]);
    expect(run([cancelPacket(1, Buffer.alloc(256))]).events[0]?.kind).toBe('cancelRequest');
    expect(violationCode(run([cancelPacket(1, Buffer.alloc(257))]).events)).toBe('invalid_cancel_length');
    expect(violationCode(run([cancelPacket(1, Buffer.alloc(3))]).events)).toBe('invalid_cancel_length');
    // A cancel connection carries nothing else: later bytes are ignored.
    const after = run([Buffer.concat([serialize.cancel(1, 2), Buffer.from('garbage')])]);
    expect(after.events).toHaveLength(1);
    expect(after.framer.phase).toBe('closed');
  });

  it('recognises a direct-TLS ClientHello by its first byte and keeps every byte for the handshake', () => {
    const hello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    const { events, rest, framer } = run([hello.subarray(0, 1), hello.subarray(1)]);
    expect(events).toEqual([{ kind: 'directTls' }]);
    expect(rest).toEqual(hello);
    expect(framer.phase).toBe('handover');
    // Only the very first byte of a plaintext connection counts.
    expect(violationCode(run([hello], { encrypted: true }).events)).toBe('invalid_startup_length');
  });

  it('refuses protocol major versions other than 3 with 0A000, like PostgreSQL', () => {
    const [ev] = run([startupPacket([['user', 'a']], 2 << 16)]).events;
    expect(ev).toMatchObject({ kind: 'violation' });
    if (ev?.kind !== 'violation') return;
    expect(ev.error.code).toBe('unsupported_protocol');
    expect(ev.error.sqlstate).toBe('0A000');
    expect(ev.error.message).toBe('unsupported frontend protocol 2.0: server supports 3.0 to 3.0');
    // 1234.5681 is not a special code.
    expect(violationCode(run([untyped(int32((1234 << 16) | 5681))]).events)).toBe('unsupported_protocol');
  });

  const malformed: [string, Buffer, string][] = [
    ['length below 8', Buffer.concat([int32(7), Buffer.alloc(3)]), 'invalid_startup_length'],
    ['negative length', int32(0x80000000), 'invalid_startup_length'],
    ['length above the bound', int32(MAX_STARTUP_PACKET_LENGTH + 5), 'invalid_startup_length'],
    ['SSLRequest with a body', untyped(Buffer.concat([int32(80877103), Buffer.alloc(4)])), 'invalid_startup_length'],
    ['no terminator', untyped(Buffer.concat([int32(196608), Buffer.from('user\0a\0')])), 'invalid_startup_layout'],
    ['name without value', untyped(Buffer.concat([int32(196608), Buffer.from('user\0\0')])), 'invalid_startup_layout'],
    ['unterminated name', untyped(Buffer.concat([int32(196608), Buffer.from('user')])), 'invalid_startup_layout'],
    ['bytes after terminator', untyped(Buffer.concat([int32(196608), Buffer.from('\0\0')])), 'invalid_startup_layout'],
    ['only a version', untyped(int32(196608)), 'invalid_startup_layout'],
    ['duplicate name, other value', startupPacket([['user', 'a'], ['user', 'b']]), 'duplicate_startup_parameter'],
    ['duplicate option', startupPacket([['_pq_.a', '1'], ['_pq_.a', '2']]), 'duplicate_startup_parameter'],
    ['invalid UTF-8 value', untyped(Buffer.concat([int32(196608), Buffer.from('user\0'), Buffer.from([0xc3, 0x28, 0, 0])])), 'invalid_startup_encoding'],
  ];
  it.each(malformed)('%s -> %s', (_name, bytes, code) => {
    const { events, framer } = run([bytes]);
    expect(violationCode(events)).toBe(code);
    expect(framer.phase).toBe('closed');
    expect(framer.push(serialize.startup({ user: 'a' }))).toEqual([]);
  });

  it('accepts the largest startup packet PostgreSQL accepts and refuses one byte more', () => {
    const fill = (n: number): Buffer => startupPacket([['application_name', 'x'.repeat(n)]]);
    const base = fill(0).length; // length word included
    const max = fill(MAX_STARTUP_PACKET_LENGTH + 4 - base);
    expect(max.length).toBe(MAX_STARTUP_PACKET_LENGTH + 4);
    expect(run([max]).events[0]?.kind).toBe('startup');
    expect(violationCode(run([fill(MAX_STARTUP_PACKET_LENGTH + 5 - base)]).events)).toBe('invalid_startup_length');
  });

  it('refuses an oversized length at once, before the body arrives', () => {
    expect(violationCode(run([int32(1 << 30)]).events)).toBe('invalid_startup_length');
  });
});

describe('password phase', () => {
  const startup = serialize.startup({ user: 'alice', database: 'app' });

  it('decodes a PasswordMessage written by pg-protocol and hands over the bytes after it', () => {
    const extra = serialize.query('select 1');
    const { events, rest, framer } = run([startup, Buffer.concat([serialize.password('tok.en.sig'), extra])]);
    expect(events.map((e) => e.kind)).toEqual(['startup', 'password']);
    expect(events[1]).toEqual({ kind: 'password', password: 'tok.en.sig' });
    expect(rest).toEqual(extra);
    expect(framer.phase).toBe('handover');
    expect(framer.takeRest()).toEqual(Buffer.alloc(0));
  });

  it('accepts a token of exactly MAX_TOKEN_BYTES and reports a longer message as passwordTooLong', () => {
    const token = 'a'.repeat(MAX_TOKEN_BYTES);
    expect(run([startup, serialize.password(token)]).events[1]).toEqual({ kind: 'password', password: token });
    const long = serialize.password(token + 'a');
    const { events, framer } = run([startup, long.subarray(0, 5)]);
    expect(events[1]).toEqual({ kind: 'passwordTooLong', length: MAX_PASSWORD_BODY_LENGTH + 5 });
    expect(framer.phase).toBe('closed');
  });

  it('ends on Terminate', () => {
    expect(run([startup, typed('X', Buffer.alloc(0))]).events[1]).toEqual({ kind: 'terminate' });
  });

  const bad: [string, Buffer, string][] = [
    ['a Query instead of a password', serialize.query('select 1'), 'unexpected_message'],
    ['a zero type byte', Buffer.from([0x00]), 'unexpected_message'],
    ['empty body (no NUL)', typed('p', Buffer.alloc(0)), 'invalid_password_packet'],
    ['NUL in the middle', typed('p', Buffer.from('ab\0cd\0')), 'invalid_password_packet'],
    ['no NUL at the end', typed('p', Buffer.from('abcd')), 'invalid_password_packet'],
    ['length below 4', Buffer.concat([Buffer.from('p'), int32(3)]), 'invalid_password_packet'],
    ['Terminate with a body', typed('X', Buffer.from([0])), 'invalid_message_length'],
  ];
  it.each(bad)('%s -> %s', (_n, bytes, code) => {
    expect(violationCode(run([startup, bytes]).events)).toBe(code);
  });

  it('reports the message type of an unexpected message without waiting for its length', () => {
    const [, ev] = run([startup, Buffer.from('Q')]).events;
    expect(ev).toMatchObject({ kind: 'violation' });
    if (ev?.kind === 'violation') expect(ev.error.message).toBe('expected password response, got message type 81');
  });

  it('bounds the bytes kept for handover', () => {
    const framer = createStartupFramer();
    framer.push(Buffer.concat([startup, serialize.password('t')]));
    expect(framer.push(Buffer.alloc(MAX_HANDOVER_BYTES))).toEqual([]);
    expect(violationCode(framer.push(Buffer.alloc(1)))).toBe('too_much_early_data');
    expect(framer.takeRest()).toEqual(Buffer.alloc(0));
  });
});

describe('framing is independent of how bytes are chunked', () => {
  // A whole plaintext login: StartupMessage, PasswordMessage, then relay bytes.
  const login = Buffer.concat([
    serialize.startup({ user: 'alice@corp.com', database: 'app', application_name: 'psql' }),
    serialize.password('eyJhbGciOi.eyJzdWIi.c2ln'),
    serialize.query('select 1'),
  ]);
  const whole = run([login]);

  it('gives the same events and rest at every split offset, and byte by byte', () => {
    for (let i = 0; i <= login.length; i++) {
      const split = run([login.subarray(0, i), login.subarray(i)]);
      expect(split.events).toEqual(whole.events);
      expect(split.rest).toEqual(whole.rest);
    }
    const bytewise = run([...login].map((b) => Buffer.from([b])));
    expect(bytewise.events).toEqual(whole.events);
    expect(bytewise.rest).toEqual(whole.rest);
  });

  it('GSSENCRequest then StartupMessage: fine when split at the boundary, a violation when sent together', () => {
    const stream = Buffer.concat([GSSENC, serialize.startup({ user: 'a' })]);
    for (let i = 1; i < stream.length; i++) {
      const framer = createStartupFramer();
      const events: StartupEvent[] = [];
      for (const chunk of [stream.subarray(0, i), stream.subarray(i)]) {
        for (const ev of framer.push(chunk)) {
          events.push(ev);
          if (ev.kind === 'gssEncRequest') framer.continuePlaintext();
        }
      }
      // Only a split exactly after the request puts the StartupMessage after the answer.
      if (i === GSSENC.length) expect(events.map((e) => e.kind)).toEqual(['gssEncRequest', 'startup']);
      else expect(events.map((e) => e.kind)).toEqual(['gssEncRequest', 'violation']);
    }
  });

  it('property: any chunking of any bytes gives the events of one push', () => {
    const interesting = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.constantFrom(login, Buffer.concat([SSL, login]), GSSENC, serialize.cancel(1, 2)),
      fc.tuple(fc.constantFrom(login), fc.nat(login.length), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(
        ([l, at, junk]) => Buffer.concat([l.subarray(0, at), junk, l.subarray(at)]),
      ),
    );
    fc.assert(
      fc.property(interesting, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (bytes, cuts, encrypted) => {
        const buf = Buffer.from(bytes);
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(buf.subarray(prev, p));
          prev = p;
        }
        chunks.push(buf.subarray(prev));
        const one = run([buf], { encrypted });
        const many = run(chunks, { encrypted });
        expect(many.events).toEqual(one.events);
        expect(many.rest).toEqual(one.rest);
        // At most one terminal event, and it is last.
        const terminal = one.events.filter((e) => e.kind === 'violation' || e.kind === 'passwordTooLong');
        expect(terminal.length).toBeLessThanOrEqual(1);
        if (terminal.length === 1) expect(one.events.at(-1)).toBe(terminal[0]);
      }),
      { numRuns: 500 },
    );
  });

  it('property: random bytes never throw, and violations carry a code, a SQLSTATE and a public message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, encrypted) => {
        const { events } = run([Buffer.from(bytes)], { encrypted });
        for (const ev of events) {
          if (ev.kind === 'violation') {
            expect(ev.error.code).toMatch(/^[a-z_]+$/);
            expect(ev.error.sqlstate).toMatch(/^(08P01|0A000)$/);
            expect(ev.error.message.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('property: a framer at the password phase never throws for a truncated or random typed stream', () => {
    const startup = serialize.startup({ user: 'a' });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), fc.nat(), (bytes, cut) => {
        const framer = createStartupFramer();
        framer.push(startup);
        const buf = Buffer.concat([serialize.password('x'.repeat(cut % 50)), Buffer.from(bytes)]);
        framer.push(buf.subarray(0, cut % (buf.length + 1)));
        framer.push(buf.subarray(cut % (buf.length + 1)));
      }),
    );
  });
});
