// Bounds-checked cursor over a message body that may be only a prefix of the message (the relay tap
// keeps at most `maxPrefix` bytes): every read returns undefined past the end instead of throwing.

import type { RawMessage } from './message-types.js';

/**
 * What the decoders start from: a reader over the tapped prefix (cut to the body length), whether
 * bytes are missing (the tap kept only a prefix), and the two failure results.
 */
export function openBody(msg: RawMessage): {
  truncated: boolean;
  r: BodyReader;
  malformed: { readonly kind: 'malformed'; readonly type: number };
  unreadable: { readonly kind: 'malformed' | 'truncated'; readonly type: number };
} {
  const bodyLength = msg.length - 4;
  const body = msg.prefix.length > bodyLength ? msg.prefix.subarray(0, Math.max(0, bodyLength)) : msg.prefix;
  const truncated = body.length < bodyLength;
  const malformed = { kind: 'malformed', type: msg.type } as const;
  return { truncated, r: new BodyReader(body), malformed, unreadable: truncated ? ({ kind: 'truncated', type: msg.type } as const) : malformed };
}

/** Reads big-endian integers and NUL-terminated strings from `buf` without ever reading past it. */
export class BodyReader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer, start = 0) {
    this.#buf = buf;
    this.#pos = start;
  }

  get position(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  byte(): number | undefined {
    if (this.#pos + 1 > this.#buf.length) return undefined;
    return this.#buf[this.#pos++];
  }

  int16(): number | undefined {
    if (this.#pos + 2 > this.#buf.length) return undefined;
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  uint16(): number | undefined {
    if (this.#pos + 2 > this.#buf.length) return undefined;
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number | undefined {
    if (this.#pos + 4 > this.#buf.length) return undefined;
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint32(): number | undefined {
    if (this.#pos + 4 > this.#buf.length) return undefined;
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** `n` bytes as a view (no copy), or undefined when fewer remain. */
  bytes(n: number): Buffer | undefined {
    if (n < 0 || this.#pos + n > this.#buf.length) return undefined;
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** A NUL-terminated string, or undefined (position unchanged) when no NUL remains. */
  cstring(): string | undefined {
    const end = this.#buf.indexOf(0, this.#pos);
    if (end === -1) return undefined;
    const v = this.#buf.toString('utf8', this.#pos, end);
    this.#pos = end + 1;
    return v;
  }

  /**
   * The unterminated tail of a cut string, up to the last complete UTF-8 character, so a prefix cut
   * in the middle of a multi-byte character does not end in U+FFFD.
   */
  tail(): string {
    const buf = this.#buf;
    let end = buf.length;
    // Step back over at most 3 continuation bytes to the lead byte; drop it if its sequence is cut.
    let i = end - 1;
    while (i >= this.#pos && i > end - 4 && ((buf[i] as number) & 0xc0) === 0x80) i--;
    if (i >= this.#pos) {
      const lead = buf[i] as number;
      const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
      if (end - i < need) end = i;
    }
    const v = buf.toString('utf8', this.#pos, end);
    this.#pos = buf.length;
    return v;
  }
}
