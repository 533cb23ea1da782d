// Backend writers: byte-for-byte against the protocol's encodings, and read back by pg-protocol's Parser.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Parser } from 'pg-protocol/dist/parser.js';
import type { BackendMessage } from 'pg-protocol/dist/messages.js';
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  encryptionRefused,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  sslAccepted,
} from '../../proxy/wire/backend-writer.js';
import { SqlState } from '../../proxy/wire/sqlstate.js';

const hex = (b: Buffer): string => b.toString('hex');
const h = (s: string): string => Buffer.from(s, 'latin1').toString('hex');
/** Expected hex of a typed message: type byte, int32 length counting itself, body. */
const frame = (type: string, body: string): string =>
  h(type) + (4 + Buffer.from(body, 'latin1').length).toString(16).padStart(8, '0') + h(body);

/** Parses one buffer with pg-protocol's server-message parser (a real client's reader). */
function parse(buf: Buffer): BackendMessage[] {
  const out: BackendMessage[] = [];
  new Parser().parse(buf, (m) => out.push(m));
  return out;
}

describe('byte-for-byte encodings', () => {
  const table: [string, Buffer, string][] = [
    ['AuthenticationOk', authenticationOk(), '52' + '00000008' + '00000000'],
    ['AuthenticationCleartextPassword', authenticationCleartextPassword(), '52' + '00000008' + '00000003'],
    ['ParameterStatus', parameterStatus('client_encoding', 'UTF8'), '53' + '00000019' + h('client_encoding\0UTF8\0')],
    ['ParameterStatus empty value', parameterStatus('x', ''), '53' + '00000007' + h('x\0\0')],
    ['BackendKeyData 3.0', backendKeyData(1234, 5678), '4b' + '0000000c' + '000004d2' + '0000162e'],
    ['BackendKeyData negative secret', backendKeyData(0xffffffff, -1), '4b' + '0000000c' + 'ffffffff' + 'ffffffff'],
    ['BackendKeyData 3.2 key', backendKeyData(7, Buffer.alloc(32, 0xab)), '4b' + '00000028' + '00000007' + 'ab'.repeat(32)],
    ['ReadyForQuery idle', readyForQuery('I'), '5a' + '00000005' + '49'],
    ['ReadyForQuery failed tx', readyForQuery('E'), '5a' + '00000005' + '45'],
    [
      'ErrorResponse FATAL',
      errorResponse({ severity: 'FATAL', code: '28P01', message: 'x' }),
      frame('E', 'SFATAL\0VFATAL\0C28P01\0Mx\0\0'),
    ],
    [
      'ErrorResponse with detail and hint',
      errorResponse({ severity: 'ERROR', code: '0A000', message: 'm', detail: 'd', hint: 'h' }),
      frame('E', 'SERROR\0VERROR\0C0A000\0Mm\0Dd\0Hh\0\0'),
    ],
    ['NoticeResponse', noticeResponse({ severity: 'NOTICE', code: '00000', message: 'n' }), frame('N', 'SNOTICE\0VNOTICE\0C00000\0Mn\0\0')],
    ['NegotiateProtocolVersion', negotiateProtocolVersion(0, ['_pq_.a']), '76' + '00000013' + '00030000' + '00000001' + h('_pq_.a\0')],
    ['NegotiateProtocolVersion no options', negotiateProtocolVersion(0, []), '76' + '0000000c' + '00030000' + '00000000'],
    ["'S'", sslAccepted(), '53'],
    ["'N'", encryptionRefused(), '4e'],
  ];
  it.each(table)('%s', (_name, buf, expected) => {
    expect(hex(buf)).toBe(expected);
  });

  it('returns a fresh buffer every call', () => {
    const a = sslAccepted();
    a[0] = 0;
    expect(hex(sslAccepted())).toBe('53');
  });
});

describe('read back by pg-protocol', () => {
  it('parses every message pg-protocol knows, in one stream', () => {
    const stream = Buffer.concat([
      authenticationCleartextPassword(),
      authenticationOk(),
      parameterStatus('server_version', '15.4'),
      backendKeyData(99, 0x01020304),
      readyForQuery('T'),
      errorResponse({ severity: 'FATAL', code: SqlState.adminShutdown, message: 'access revoked', detail: 'd', hint: 'h' }),
      noticeResponse({ severity: 'WARNING', code: '01000', message: 'careful' }),
    ]);
    const msgs = parse(stream) as unknown as Record<string, unknown>[];
    expect(msgs.map((m) => m.name)).toEqual([
      'authenticationCleartextPassword',
      'authenticationOk',
      'parameterStatus',
      'backendKeyData',
      'readyForQuery',
      'error',
      'notice',
    ]);
    expect(msgs[2]).toMatchObject({ parameterName: 'server_version', parameterValue: '15.4' });
    expect(msgs[3]).toMatchObject({ processID: 99, secretKey: 0x01020304 });
    expect(msgs[4]).toMatchObject({ status: 'T' });
    expect(msgs[5]).toMatchObject({ severity: 'FATAL', code: '57P01', message: 'access revoked', detail: 'd', hint: 'h' });
    expect(msgs[6]).toMatchObject({ severity: 'WARNING', code: '01000', message: 'careful' });
  });

  it('property: any ErrorResponse text round-trips, NUL repaired so framing never breaks', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.option(fc.string()), fc.constantFrom('ERROR', 'FATAL') , (message, detail, severity) => {
        const buf = errorResponse({ severity, code: 'XX000', message, ...(detail === null ? {} : { detail }) });
        expect(buf.readUInt32BE(1)).toBe(buf.length - 1);
        const msgs = parse(Buffer.concat([buf, readyForQuery('I')])) as unknown as Record<string, unknown>[];
        expect(msgs).toHaveLength(2);
        expect(msgs[0]).toMatchObject({ severity, code: 'XX000', message: message.replaceAll('\0', '\uFFFD') });
        if (detail !== null) expect(msgs[0]?.detail).toBe(detail.replaceAll('\0', '\uFFFD'));
      }),
    );
  });

  it('property: ParameterStatus of any NUL-free names and values round-trips', () => {
    const text = fc.string({ unit: 'binary' }).filter((s) => !s.includes('\0'));
    fc.assert(
      fc.property(text, text, (name, value) => {
        const msgs = parse(parameterStatus(name, value)) as unknown as Record<string, unknown>[];
        expect(msgs[0]).toMatchObject({ name: 'parameterStatus', parameterName: name, parameterValue: value });
      }),
    );
  });
});

describe('refuses to write a malformed message', () => {
  it.each([
    ['NUL in a parameter name', () => parameterStatus('a\0b', 'v')],
    ['NUL in a parameter value', () => parameterStatus('a', 'v\0')],
    ['a non-SQLSTATE code', () => errorResponse({ severity: 'FATAL', code: '123', message: 'm' })],
    ['a pid out of range', () => backendKeyData(2 ** 32, 1)],
    ['a fractional secret', () => backendKeyData(1, 1.5)],
    ['a 3-byte key', () => backendKeyData(1, Buffer.alloc(3))],
    ['a 257-byte key', () => backendKeyData(1, Buffer.alloc(257))],
    ['a minor version out of range', () => negotiateProtocolVersion(65536, [])],
    ['NUL in an option name', () => negotiateProtocolVersion(0, ['_pq_.\0'])],
  ])('%s', (_name, write) => {
    expect(write).toThrow(RangeError);
  });
});
