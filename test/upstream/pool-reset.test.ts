// The pool's reset confirmation is exact: CommandComplete "DISCARD ALL" then ReadyForQuery 'I', split
// anywhere across chunks, and not one byte more or different.
import { describe, expect, it } from 'vitest';
import { RESET_CONFIRMATION, resetReplyReader } from '../../proxy/upstream/pool.js';

const msg = (type: string, body: Buffer): Buffer => {
  const b = Buffer.alloc(5 + body.length);
  b.write(type, 0, 'latin1');
  b.writeInt32BE(4 + body.length, 1);
  body.copy(b, 5);
  return b;
};
const commandComplete = (tag: string) => msg('C', Buffer.from(`${tag}\0`, 'latin1'));
const ready = (status: string) => msg('Z', Buffer.from(status, 'latin1'));
const parameterStatus = (name: string, value: string) => msg('S', Buffer.from(`${name}\0${value}\0`, 'utf8'));
const notice = msg('N', Buffer.from('SNOTICE\0Mhi\0\0', 'latin1'));

/** Feeds `bytes` in chunks cut at `cuts`; returns the last state. */
function feed(bytes: Buffer, cuts: number[]): string {
  const read = resetReplyReader();
  let state = 'more';
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= at) continue;
    state = read(bytes.subarray(at, cut));
    at = cut;
    if (state !== 'more') break;
  }
  return state;
}

describe('pool reset confirmation', () => {
  it('is exactly CommandComplete DISCARD ALL followed by ReadyForQuery I', () => {
    expect(RESET_CONFIRMATION.equals(Buffer.concat([commandComplete('DISCARD ALL'), ready('I')]))).toBe(true);
  });

  it('is confirmed when split at every offset, in two and three chunks', () => {
    const n = RESET_CONFIRMATION.length;
    for (let i = 1; i < n; i++) {
      expect(feed(RESET_CONFIRMATION, [i])).toBe('confirmed');
      for (let j = i + 1; j < n; j++) expect(feed(RESET_CONFIRMATION, [i, j])).toBe('confirmed');
    }
  });

  const refused: [string, Buffer][] = [
    ['an error instead', msg('E', Buffer.from('SERROR\0C25001\0Mno\0\0', 'latin1'))],
    ['a ParameterStatus between the two', Buffer.concat([commandComplete('DISCARD ALL'), parameterStatus('application_name', ''), ready('I')])],
    ['a notice before', Buffer.concat([notice, RESET_CONFIRMATION])],
    ['a result still owed to the previous client before', Buffer.concat([commandComplete('SELECT 1'), ready('I'), RESET_CONFIRMATION])],
    ['an open transaction', Buffer.concat([commandComplete('DISCARD ALL'), ready('T')])],
    ['a failed transaction', Buffer.concat([commandComplete('DISCARD ALL'), ready('E')])],
    ['another tag', Buffer.concat([commandComplete('DISCARD'), ready('I')])],
    ['one byte more after it', Buffer.concat([RESET_CONFIRMATION, Buffer.from([0x41])])],
    ['a notification after it', Buffer.concat([RESET_CONFIRMATION, msg('A', Buffer.from('\0\0\0\x01c\0p\0', 'latin1'))])],
  ];
  for (const [what, bytes] of refused) {
    it(`is refused for ${what}, however it is split`, () => {
      expect(feed(bytes, [])).toBe('bad');
      for (let i = 1; i < bytes.length; i++) {
        // Bytes that come in a later chunk than a whole confirmation reach the pool's idle
        // listener instead, which retires the connection on any byte.
        if (bytes.subarray(0, i).equals(RESET_CONFIRMATION)) continue;
        expect(feed(bytes, [i])).not.toBe('confirmed');
      }
    });
  }

  it('is still waiting (a timeout closes the connection) for a prefix', () => {
    expect(feed(RESET_CONFIRMATION.subarray(0, 10), [])).toBe('more');
  });
});
