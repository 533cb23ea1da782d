// Backend decoders: command tags as a table, messages whole and cut, hostile input. (The same decoders
// read a real PostgreSQL's stream in test/relay/pipe.test.ts.)
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBackendMessage, parseCommandTag } from '../../proxy/wire/backend-decode.js';
import { errorResponse, noticeResponse, readyForQuery } from '../../proxy/wire/backend-writer.js';
import type { RawMessage } from '../../proxy/wire/message-types.js';

function msg(type: string, body: Buffer | string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const len = Buffer.alloc(4);
  len.writeInt32BE(b.length + 4);
  return Buffer.concat([Buffer.from(type), len, b]);
}

function raw(buf: Buffer, maxPrefix = Infinity): RawMessage {
  const length = buf.readInt32BE(1);
  return { type: buf[0] as number, length, prefix: buf.subarray(5, 5 + Math.min(maxPrefix, length - 4)) };
}

describe('parseCommandTag', () => {
  it.each([
    ['SELECT 5', 'SELECT', 5],
    ['INSERT 0 3', 'INSERT', 3],
    ['UPDATE 0', 'UPDATE', 0],
    ['DELETE 12', 'DELETE', 12],
    ['MERGE 2', 'MERGE', 2],
    ['COPY 1000000', 'COPY', 1000000],
    ['FETCH 10', 'FETCH', 10],
    ['MOVE 1', 'MOVE', 1],
    ['CREATE TABLE', 'CREATE', undefined],
    ['BEGIN', 'BEGIN', undefined],
    ['SET', 'SET', undefined],
    ['SELECT', 'SELECT', undefined],
    ['SELECT x', 'SELECT', undefined],
    ['', '', undefined],
  ])('%s', (tag, command, rows) => {
    expect(parseCommandTag(tag)).toEqual({ command, rows });
  });
});

describe('messages', () => {
  it.each<[string, Buffer, unknown]>([
    ['CommandComplete', msg('C', 'INSERT 0 3\0'), { kind: 'commandComplete', tag: 'INSERT 0 3', command: 'INSERT', rows: 3 }],
    [
      'ErrorResponse',
      errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist', detail: 'd' }),
      { kind: 'errorResponse', severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' },
    ],
    ['ErrorResponse without V', msg('E', 'SFEHLER\0C23505\0Mdup\0\0'), { kind: 'errorResponse', severity: 'FEHLER', code: '23505', message: 'dup' }],
    ['NoticeResponse', noticeResponse({ severity: 'NOTICE', code: '00000', message: 'n' }), { kind: 'noticeResponse', severity: 'NOTICE', code: '00000', message: 'n' }],
    ['ReadyForQuery', readyForQuery('T'), { kind: 'readyForQuery', status: 'T' }],
    ['CopyInResponse', msg('G', Buffer.from([0, 0, 2, 0, 0, 0, 0])), { kind: 'copyInResponse', binary: false, columns: 2 }],
    ['CopyOutResponse binary', msg('H', Buffer.from([1, 0, 1, 0, 1])), { kind: 'copyOutResponse', binary: true, columns: 1 }],
    ['CopyBothResponse', msg('W', Buffer.from([0, 0, 0])), { kind: 'copyBothResponse', binary: false, columns: 0 }],
    ['CopyData', msg('d', Buffer.alloc(77)), { kind: 'copyData', bytes: 77 }],
    ['CopyDone', msg('c', ''), { kind: 'copyDone' }],
    ['RowDescription', msg('T', Buffer.from([0, 3])), { kind: 'rowDescription', columns: 3 }],
    ['EmptyQueryResponse', msg('I', ''), { kind: 'emptyQueryResponse' }],
    ['DataRow is not decoded', msg('D', Buffer.from([0, 0])), { kind: 'unknown', type: 0x44 }],
    ['ReadyForQuery with a bad status', msg('Z', 'X'), { kind: 'malformed', type: 0x5a }],
    ['ErrorResponse without terminator', msg('E', 'C42P01'), { kind: 'malformed', type: 0x45 }],
  ])('%s', (_name, buf, expected) => {
    expect(decodeBackendMessage(raw(buf))).toEqual(expected);
  });

  it('keeps the SQLSTATE and a cut message when an ErrorResponse is longer than the prefix', () => {
    const buf = errorResponse({ severity: 'ERROR', code: '22012', message: 'division by zero, and then some more words' });
    // 'SERROR\0VERROR\0C22012\0' is 21 bytes; 'M' then 10 bytes of text.
    expect(decodeBackendMessage(raw(buf, 32))).toEqual({ kind: 'errorResponse', severity: 'ERROR', code: '22012', message: 'division b' });
  });

  it('every prefix length of every message decodes without throwing, and never as malformed', () => {
    const all = [
      msg('C', 'SELECT 100\0'),
      errorResponse({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' }),
      readyForQuery('I'),
      msg('G', Buffer.from([0, 0, 1, 0, 0])),
      msg('T', Buffer.from([0, 1])),
    ];
    for (const buf of all) {
      for (let cut = 0; cut <= buf.length - 5; cut++) {
        expect(decodeBackendMessage(raw(buf, cut)).kind).not.toBe('malformed');
      }
    }
  });

  it('property: any type, length and bytes decode without throwing', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: -10, max: 1 << 20 }), fc.uint8Array({ maxLength: 200 }), (type, length, bytes) => {
        expect(typeof decodeBackendMessage({ type, length, prefix: Buffer.from(bytes) }).kind).toBe('string');
      }),
      { numRuns: 3000 },
    );
  });
});
