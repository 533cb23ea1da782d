// The message tap: boundaries at every split offset, prefixes bounded and copied only for the types
// asked for, violations typed, any bytes safe.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { createMessageTap } from '../../proxy/relay/message-tap.js';
import type { MessageTapOptions } from '../../proxy/relay/message-tap.js';
import type { RawMessage } from '../../proxy/wire/message-types.js';
import type { WireError } from '../../proxy/wire/wire-error.js';

interface Seen {
  type: string;
  length: number;
  prefix: string;
}

function collect(chunks: Buffer[], opts: Partial<MessageTapOptions> = {}): { seen: Seen[]; errors: WireError[]; raw: RawMessage[] } {
  const seen: Seen[] = [];
  const raw: RawMessage[] = [];
  const errors: WireError[] = [];
  const tap = createMessageTap({
    maxPrefix: 16,
    interesting: new Set([0x51, 0x50]),
    onMessage(m) {
      raw.push(m);
      seen.push({ type: String.fromCharCode(m.type), length: m.length, prefix: m.prefix.toString('latin1') });
    },
    onViolation: (e) => errors.push(e),
    ...opts,
  });
  for (const c of chunks) tap.push(c);
  return { seen, errors, raw };
}

/** A typed message with an arbitrary body. */
function msg(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([b, body]);
}

// A client stream of several messages: short ones, a long query, a zero-length one, COPY data.
const stream = Buffer.concat([
  serialize.query('select 1'),
  serialize.parse({ name: 's', text: 'select * from a_table_with_a_long_name where id = $1' }),
  serialize.bind({ values: ['1'] }),
  serialize.execute(),
  serialize.sync(),
  serialize.copyData(Buffer.alloc(300, 0x61)),
  serialize.copyDone(),
  serialize.end(),
]);

describe('boundaries', () => {
  const whole = collect([stream]);

  it('reports every message with its length, and prefixes only for interesting types', () => {
    expect(whole.seen.map((s) => s.type).join('')).toBe('QPBESdcX');
    expect(whole.seen[0]).toEqual({ type: 'Q', length: 13, prefix: 'select 1\0' });
    expect(whole.seen[1]?.prefix).toBe('s\0select * from ');
    expect(whole.seen[2]?.prefix).toBe('');
    expect(whole.seen[5]).toEqual({ type: 'd', length: 304, prefix: '' });
    expect(whole.seen[4]).toEqual({ type: 'S', length: 4, prefix: '' });
    expect(whole.errors).toEqual([]);
  });

  it('gives the same messages at every split offset, and byte by byte', () => {
    for (let i = 0; i <= stream.length; i++) {
      expect(collect([stream.subarray(0, i), stream.subarray(i)]).seen).toEqual(whole.seen);
    }
    for (let i = 0; i < stream.length; i += 7) {
      for (let j = i; j <= stream.length; j += 11) {
        expect(collect([stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)]).seen).toEqual(whole.seen);
      }
    }
    expect(collect([...stream].map((b) => Buffer.from([b]))).seen).toEqual(whole.seen);
  });

  it('reports a message only when its last byte has passed', () => {
    const q = serialize.query('select 1');
    expect(collect([q.subarray(0, q.length - 1)]).seen).toEqual([]);
    expect(collect([q.subarray(0, q.length - 1), q.subarray(q.length - 1)]).seen).toHaveLength(1);
  });

  it('hands a prefix inside one chunk as a view of it, and one spread over chunks as its own copy', () => {
    const q = Buffer.from(serialize.query('select 1'));
    // Whole: the view shows what the caller does to the chunk after the call (the relay reuses it).
    const whole = collect([q]);
    expect(whole.seen[0]?.prefix).toBe('select 1\0');
    q.fill(0x78, 5);
    expect(whole.raw[0]?.prefix.toString('latin1')).toBe('xxxxxxxxx');
    // Split inside the prefix: a copy, which the chunks' later contents do not reach.
    const fresh = Buffer.from(serialize.query('select 1'));
    const a = Buffer.from(fresh.subarray(0, 8));
    const b = Buffer.from(fresh.subarray(8));
    const split = collect([a, b]);
    a.fill(0);
    b.fill(0);
    expect(split.raw[0]?.prefix.toString('latin1')).toBe('select 1\0');
  });

  it('takes the types of interest as a predicate too, and maxPrefix 0 keeps nothing', () => {
    const pred = collect([stream], { interesting: (t) => t === 0x64 });
    expect(pred.seen[5]?.prefix).toBe('a'.repeat(16));
    expect(pred.seen[0]?.prefix).toBe('');
    const none = collect([stream], { maxPrefix: 0, interesting: () => true });
    expect(none.seen.every((s) => s.prefix === '')).toBe(true);
  });

  it('follows a 1 GiB message announced in its header while keeping only the prefix', () => {
    const announced = 1 << 30;
    const header = Buffer.alloc(5);
    header[0] = 0x44; // DataRow
    header.writeInt32BE(announced, 1);
    const seen: RawMessage[] = [];
    const tap = createMessageTap({ maxPrefix: 64, interesting: () => true, onMessage: (m) => seen.push(m) });
    tap.push(header);
    const chunk = Buffer.alloc(1 << 20, 0x7a);
    for (let sent = 0; sent < announced - 4; sent += chunk.length) {
      tap.push(chunk.subarray(0, Math.min(chunk.length, announced - 4 - sent)));
    }
    expect(seen).toHaveLength(1);
    expect(seen[0]?.length).toBe(announced);
    expect(seen[0]?.prefix.length).toBe(64);
  });
});

describe('violations', () => {
  it.each([
    ['length 3', Buffer.from([0x51, 0, 0, 0, 3])],
    ['length 0', Buffer.from([0x51, 0, 0, 0, 0])],
    ['negative length', Buffer.from([0x51, 0x80, 0, 0, 0])],
  ])('%s stops the tap once, after the messages before it', (_name, bad) => {
    const { seen, errors } = collect([Buffer.concat([serialize.sync(), bad, serialize.sync()]), serialize.sync()]);
    expect(seen.map((s) => s.type)).toEqual(['S']);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.code).toBe('invalid_message_length');
    expect(errors[0]?.sqlstate).toBe('08P01');
  });

  it('exposes the violation on the tap', () => {
    const tap = createMessageTap({ maxPrefix: 1, interesting: () => false, onMessage: () => {} });
    expect(tap.violation).toBeUndefined();
    tap.push(Buffer.from([0x51, 0, 0, 0, 1]));
    expect(tap.violation?.code).toBe('invalid_message_length');
  });

  it('refuses a nonsensical maxPrefix', () => {
    expect(() => createMessageTap({ maxPrefix: -1, interesting: () => true, onMessage: () => {} })).toThrow(RangeError);
  });
});

describe('properties', () => {
  const message = fc
    .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 80 }))
    .map(([type, body]) => ({ type, body: Buffer.from(body) }));

  it('any sequence of messages, any chunking: each message once, in order, prefix = first bytes', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 10 }), fc.nat(40), (msgs, cuts, maxPrefix) => {
        const buf = Buffer.concat(msgs.map((m) => msg(m.type, m.body)));
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let prev = 0;
        for (const p of points) {
          chunks.push(buf.subarray(prev, p));
          prev = p;
        }
        chunks.push(buf.subarray(prev));
        const { raw, errors } = collect(chunks, { maxPrefix, interesting: (t) => t % 2 === 0 });
        expect(errors).toEqual([]);
        expect(raw.map((r) => r.type)).toEqual(msgs.map((m) => m.type));
        raw.forEach((r, i) => {
          const m = msgs[i];
          if (m === undefined) throw new Error('count');
          expect(r.length).toBe(m.body.length + 4);
          const expected = m.type % 2 === 0 ? m.body.subarray(0, maxPrefix) : Buffer.alloc(0);
          expect(r.prefix).toEqual(expected);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('random bytes in random chunks never throw; a violation is reported at most once', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), (chunks) => {
        const { errors } = collect(chunks.map((c) => Buffer.from(c)), { interesting: () => true });
        expect(errors.length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('prefixFor', () => {
  const query = (text: string): Buffer => serialize.query(text);
  const parse = (text: string): Buffer => serialize.parse({ text });

  it('keeps each type its own number of bytes, the same for every tap given the same function', () => {
    const limits = (type: number): number => (type === 0x51 ? 4 : type === 0x50 ? 2 : 0);
    for (let i = 0; i < 3; i++) {
      const { seen } = collect([Buffer.concat([query('SELECT 1'), parse('SELECT 2'), serialize.sync()])], { prefixFor: limits });
      expect(seen).toEqual([
        { type: 'Q', length: 13, prefix: 'SELE' },
        { type: 'P', length: 16, prefix: '\0S' },
        { type: 'S', length: 4, prefix: '' },
      ]);
    }
  });

  it('refuses a function that gives a length that is not a non-negative integer, every time', () => {
    const bad = (type: number): number => (type === 0x51 ? -1 : 0);
    expect(() => collect([], { prefixFor: bad })).toThrow(RangeError);
    expect(() => collect([], { prefixFor: bad })).toThrow(RangeError);
  });
});
