// The tap's `atBoundary`: true exactly when every byte pushed so far ends a whole message, at every
// split offset, because live.ts writes its FATAL into the client stream only then.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { serialize } from 'pg-protocol';
import { createMessageTap, type MessageTap } from '../../proxy/relay/message-tap.js';

function newTap(): MessageTap {
  return createMessageTap({ maxPrefix: 8, interesting: () => true, onMessage: () => {} });
}

/** A typed message with an arbitrary body. */
function msg(type: number, body: Buffer): Buffer {
  const b = Buffer.alloc(5);
  b[0] = type;
  b.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([b, body]);
}

/** The offsets (0 included) at which a whole number of messages has passed. */
function boundaries(messages: Buffer[]): Set<number> {
  const at = new Set<number>([0]);
  let off = 0;
  for (const m of messages) at.add((off += m.length));
  return at;
}

// Server-side shapes: a zero-length body (ParseComplete-like), a 5-byte header split, a big DataRow.
const messages = [
  msg(0x31, Buffer.alloc(0)),
  msg(0x44, Buffer.alloc(3, 0x61)),
  msg(0x43, Buffer.from('SELECT 1\0')),
  msg(0x44, Buffer.alloc(1000, 0x62)),
  msg(0x5a, Buffer.from('I')),
];
const stream = Buffer.concat(messages);
const whole = boundaries(messages);

describe('atBoundary', () => {
  it('is true before anything was pushed and after an empty chunk', () => {
    const tap = newTap();
    expect(tap.atBoundary).toBe(true);
    tap.push(Buffer.alloc(0));
    expect(tap.atBoundary).toBe(true);
  });

  it('after a prefix of every length, is true exactly at message ends', () => {
    for (let i = 0; i <= stream.length; i++) {
      const tap = newTap();
      tap.push(stream.subarray(0, i));
      expect(tap.atBoundary, `after ${i} bytes`).toBe(whole.has(i));
    }
  });

  it('byte by byte, is true exactly at message ends', () => {
    const tap = newTap();
    for (let i = 0; i < stream.length; i++) {
      tap.push(stream.subarray(i, i + 1));
      expect(tap.atBoundary, `after ${i + 1} bytes`).toBe(whole.has(i + 1));
    }
  });

  it('is true after two chunks split at any offset that together hold whole messages', () => {
    for (let i = 0; i <= stream.length; i++) {
      const tap = newTap();
      tap.push(stream.subarray(0, i));
      tap.push(stream.subarray(i));
      expect(tap.atBoundary).toBe(true);
    }
  });

  it('is false once the stream stopped making sense, even at what looks like a boundary', () => {
    const tap = newTap();
    tap.push(serialize.sync());
    expect(tap.atBoundary).toBe(true);
    tap.push(Buffer.from([0x51, 0, 0, 0, 3]));
    expect(tap.violation).toBeDefined();
    expect(tap.atBoundary).toBe(false);
    tap.push(serialize.sync());
    expect(tap.atBoundary).toBe(false);
  });

  it('property: any messages, any chunking, after each chunk equals "offset is a message end"', () => {
    const message = fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 }))
      .map(([type, body]) => msg(type, Buffer.from(body)));
    fc.assert(
      fc.property(fc.array(message, { maxLength: 10 }), fc.array(fc.nat(), { maxLength: 12 }), (msgs, cuts) => {
        const buf = Buffer.concat(msgs);
        const ends = boundaries(msgs);
        const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
        const tap = newTap();
        let prev = 0;
        for (const p of [...points, buf.length]) {
          tap.push(buf.subarray(prev, p));
          prev = p;
          expect(tap.atBoundary).toBe(ends.has(p));
        }
      }),
      { numRuns: 500 },
    );
  });
});
