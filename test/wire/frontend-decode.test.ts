// Frontend decoders: messages written by pg-protocol (node-postgres' own serializer), whole and cut at
// every prefix length; hostile input never throws.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { decodeFrontendMessage } from '../../proxy/wire/frontend-decode.js';
import type { FrontendMessage } from '../../proxy/wire/frontend-decode.js';
import type { RawMessage } from '../../proxy/wire/message-types.js';

/** Splits one serialized message into what the tap reports, keeping `maxPrefix` body bytes. */
function raw(buf: Buffer, maxPrefix = Infinity): RawMessage {
  const length = buf.readInt32BE(1);
  return { type: buf[0] as number, length, prefix: buf.subarray(5, 5 + Math.min(maxPrefix, length - 4)) };
}

function functionCall(oid: number, args: (Buffer | null)[]): Buffer {
  const parts: Buffer[] = [];
  const i32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  const i16 = (n: number): Buffer => {
    const b = Buffer.alloc(2);
    b.writeInt16BE(n);
    return b;
  };
  parts.push(i32(oid), i16(1), i16(0), i16(args.length));
  for (const a of args) parts.push(a === null ? i32(-1) : Buffer.concat([i32(a.length), a]));
  parts.push(i16(0));
  const body = Buffer.concat(parts);
  return Buffer.concat([Buffer.from('F'), i32(body.length + 4), body]);
}

const messages: [string, Buffer, FrontendMessage][] = [
  ['Query', serialize.query('select 1'), { kind: 'query', text: 'select 1', truncated: false }],
  ['Query with UTF-8', serialize.query("select 'héllo €𝄞'"), { kind: 'query', text: "select 'héllo €𝄞'", truncated: false }],
  [
    'Parse',
    serialize.parse({ name: 's1', text: 'select $1::int, $2', types: [23, 25] }),
    { kind: 'parse', statement: 's1', text: 'select $1::int, $2', paramTypes: 2, truncated: false },
  ],
  ['Parse unnamed', serialize.parse({ text: 'select 2' }), { kind: 'parse', statement: '', text: 'select 2', paramTypes: 0, truncated: false }],
  [
    'Bind',
    serialize.bind({ portal: 'p1', statement: 's1', values: ['42', null, 'x'] }),
    { kind: 'bind', portal: 'p1', statement: 's1', paramFormats: [0, 0, 0], paramCount: 3, truncated: false },
  ],
  [
    'Bind binary',
    serialize.bind({ values: [Buffer.from([1, 2])] }),
    { kind: 'bind', portal: '', statement: '', paramFormats: [1], paramCount: 1, truncated: false },
  ],
  ['Execute', serialize.execute({ portal: 'p1', rows: 100 }), { kind: 'execute', portal: 'p1', maxRows: 100 }],
  ['Execute unnamed', serialize.execute(), { kind: 'execute', portal: '', maxRows: 0 }],
  ['Describe statement', serialize.describe({ type: 'S', name: 's1' }), { kind: 'describe', target: 'statement', name: 's1' }],
  ['Close portal', serialize.close({ type: 'P', name: 'p' }), { kind: 'close', target: 'portal', name: 'p' }],
  ['Sync', serialize.sync(), { kind: 'sync' }],
  ['Flush', serialize.flush(), { kind: 'flush' }],
  ['Terminate', serialize.end(), { kind: 'terminate' }],
  ['CopyData', serialize.copyData(Buffer.alloc(1000, 1)), { kind: 'copyData', bytes: 1000 }],
  ['CopyDone', serialize.copyDone(), { kind: 'copyDone' }],
  ['CopyFail', serialize.copyFail('aborted by user'), { kind: 'copyFail', message: 'aborted by user', truncated: false }],
  ['FunctionCall', functionCall(1598, [Buffer.from('x'), null]), { kind: 'functionCall', oid: 1598, argCount: 2, truncated: false }],
];

describe('whole messages', () => {
  it.each(messages)('%s', (_name, buf, expected) => {
    expect(decodeFrontendMessage(raw(buf))).toEqual(expected);
  });

  it('returns Bind values only when asked, as views of the prefix', () => {
    const msg = raw(serialize.bind({ values: ['42', null, 'x'] }));
    expect(decodeFrontendMessage(msg)).not.toHaveProperty('values');
    const withValues = decodeFrontendMessage(msg, { bindValues: true });
    expect(withValues).toMatchObject({ kind: 'bind', paramCount: 3, values: [Buffer.from('42'), null, Buffer.from('x')] });
  });

  it('names unknown types and malformed bodies', () => {
    expect(decodeFrontendMessage({ type: 0x7a, length: 4, prefix: Buffer.alloc(0) })).toEqual({ kind: 'unknown', type: 0x7a });
    const unterminated = { type: 0x51, length: 7, prefix: Buffer.from('abc') };
    expect(decodeFrontendMessage(unterminated)).toEqual({ kind: 'malformed', type: 0x51 });
    const badTarget = { type: 0x44, length: 6, prefix: Buffer.from('X\0') };
    expect(decodeFrontendMessage(badTarget)).toEqual({ kind: 'malformed', type: 0x44 });
    const badLength = raw(serialize.bind({ values: ['1'] }));
    const body = Buffer.from(badLength.prefix);
    body.writeInt32BE(-2, body.length - 2 - 1 - 4);
    expect(decodeFrontendMessage({ ...badLength, prefix: body }, { bindValues: true })).toEqual({ kind: 'malformed', type: 0x42 });
  });
});

describe('cut prefixes', () => {
  it.each(messages)('%s at every prefix length: same kind, flagged, texts are prefixes', (_name, buf, full) => {
    const bodyLength = buf.length - 5;
    for (let cut = 0; cut <= bodyLength; cut++) {
      const d = decodeFrontendMessage(raw(buf, cut), { bindValues: true });
      if (d.kind === 'truncated') {
        expect(cut).toBeLessThan(bodyLength);
        continue;
      }
      expect(d.kind).toBe(full.kind);
      if ('truncated' in d) expect(d.truncated).toBe(cut < bodyLength);
      if (d.kind === 'query' && full.kind === 'query') {
        expect(full.text.startsWith(d.text)).toBe(true);
        expect(d.text).not.toContain('\uFFFD');
      }
      if (d.kind === 'parse' && full.kind === 'parse' && d.text !== undefined) {
        expect(full.text?.startsWith(d.text)).toBe(true);
      }
    }
  });

  it('cuts a long query at a character boundary', () => {
    const text = 'select ' + '€'.repeat(100);
    for (let cut = 1; cut < 40; cut++) {
      const d = decodeFrontendMessage(raw(serialize.query(text), cut));
      if (d.kind !== 'query') throw new Error(d.kind);
      expect(d.truncated).toBe(true);
      expect(text.startsWith(d.text)).toBe(true);
      expect(Buffer.byteLength(d.text)).toBeGreaterThan(cut - 3);
    }
  });
});

describe('hostile input', () => {
  it('property: any type, length and bytes decode without throwing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: -10, max: 1 << 20 }), fc.uint8Array({ maxLength: 200 }), fc.boolean(), (type, length, bytes, bindValues) => {
        const d = decodeFrontendMessage({ type, length, prefix: Buffer.from(bytes) }, { bindValues });
        expect(typeof d.kind).toBe('string');
      }),
      { numRuns: 3000 },
    );
  });
});
