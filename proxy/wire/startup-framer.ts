// Incremental reader of what a client sends before the relay starts: the untyped startup packets
// (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage, or a direct-TLS ClientHello), then the
// typed PasswordMessage. Every length is checked before a byte of the body is buffered.
import {
  CANCEL_KEY_LENGTH_3_0,
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  MAX_CANCEL_KEY_LENGTH,
  MAX_HANDOVER_BYTES,
  MAX_PASSWORD_BODY_LENGTH,
  MAX_STARTUP_PACKET_LENGTH,
  MIN_STARTUP_PACKET_LENGTH,
  PROTOCOL_MAJOR,
  PROTOCOL_NEWEST_MINOR,
  PROTOCOL_OPTION_PREFIX,
  SSL_REQUEST_CODE,
  TLS_HANDSHAKE_CONTENT_TYPE,
} from './constants.js';
import { FrontendType } from './message-types.js';
import { SqlState } from './sqlstate.js';
import { WireError, WireErrorCode } from './wire-error.js';

/** A StartupMessage: protocol version, parameters in arrival order, and the `_pq_.` options asked for. */
export interface StartupMessage {
  readonly kind: 'startup';
  readonly major: number;
  readonly minor: number;
  /** Every parameter except protocol options; names are unique (a repeat must repeat the value). */
  readonly params: ReadonlyMap<string, string>;
  /** `_pq_.` option names; rolegate recognises none, so all of them go into NegotiateProtocolVersion. */
  readonly protocolOptions: readonly string[];
}

/** What the startup framer found; `violation` and `passwordTooLong` end the framer. */
export type StartupEvent =
  /** The first byte was a TLS handshake record: PostgreSQL 17 direct TLS. `takeRest()` holds the bytes. */
  | { readonly kind: 'directTls' }
  | { readonly kind: 'sslRequest' }
  | { readonly kind: 'gssEncRequest' }
  /** `secret` is 4 bytes in protocol 3.0, up to 256 in 3.2. `pid` is unsigned. */
  | { readonly kind: 'cancelRequest'; readonly pid: number; readonly secret: Buffer }
  | StartupMessage
  | { readonly kind: 'password'; readonly password: string }
  /** A PasswordMessage longer than MAX_PASSWORD_BODY_LENGTH: refused like an invalid token (28P01). */
  | { readonly kind: 'passwordTooLong'; readonly length: number }
  | { readonly kind: 'terminate' }
  | { readonly kind: 'violation'; readonly error: WireError };

/**
 * - `startup`: expects an untyped packet.
 * - `encryptionAnswer`: after SSLRequest/GSSENCRequest, until the session answered; any byte here is
 *   a violation (CVE-2021-23214: bytes sent before the TLS handshake could be injected by a MITM).
 * - `password`: after the StartupMessage; expects a PasswordMessage (or Terminate).
 * - `handover`: after the password or a direct-TLS first byte; bytes are kept for `takeRest()`.
 * - `closed`: after a cancel request, Terminate, or an error; further bytes are ignored.
 */
export type StartupPhase = 'startup' | 'encryptionAnswer' | 'password' | 'handover' | 'closed';

export interface StartupFramerOptions {
  /** The stream already runs inside TLS (after 'S', or direct TLS): encryption requests are refused. */
  readonly encrypted?: boolean;
}

export interface StartupFramer {
  /** Feeds bytes; returns the events completed by them, in order. Never throws on any input. */
  push(chunk: Buffer): StartupEvent[];
  /** After answering 'N' to an SSLRequest/GSSENCRequest: the client continues in plaintext. */
  continuePlaintext(): void;
  /** The bytes kept in the `handover` phase (to unshift onto the socket for TLS or the relay); clears them. */
  takeRest(): Buffer;
  readonly phase: StartupPhase;
}

const HEADER_MAX = 5;
// fatal: a startup parameter is forwarded upstream and matched against names, so bytes that are not
// UTF-8 are refused rather than silently replaced. ignoreBOM keeps a leading U+FEFF as a character.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Creates a framer for one client connection (or for the TLS stream after an SSLRequest). */
export function createStartupFramer(options: StartupFramerOptions = {}): StartupFramer {
  let phase: StartupPhase = 'startup';
  let sslDone = options.encrypted === true;
  let gssDone = options.encrypted === true;
  let seenAny = options.encrypted === true;
  let pendingRequest: 'SSL request' | 'GSSAPI encryption request' = 'SSL request';
  const header = Buffer.alloc(HEADER_MAX);
  let headerFill = 0;
  let body: Buffer | undefined;
  let bodyFill = 0;
  let rest: Buffer[] = [];
  let restBytes = 0;
  let out: StartupEvent[] = [];

  function fail(code: WireErrorCode, message: string, sqlstate?: SqlState): void {
    phase = 'closed';
    body = undefined;
    rest = [];
    restBytes = 0;
    out.push({ kind: 'violation', error: new WireError(code, message, sqlstate) });
  }

  function keep(bytes: Buffer): void {
    restBytes += bytes.length;
    if (restBytes > MAX_HANDOVER_BYTES) {
      fail(WireErrorCode.tooMuchEarlyData, 'too much data received before authentication completed');
      return;
    }
    rest.push(bytes);
  }

  /** Reads the length word, then the body; returns the new offset. */
  function readUntyped(chunk: Buffer, off: number): number {
    if (body === undefined) {
      const n = Math.min(4 - headerFill, chunk.length - off);
      chunk.copy(header, headerFill, off, off + n);
      headerFill += n;
      off += n;
      if (headerFill < 4) return off;
      headerFill = 0;
      // Signed read: a length word with the top bit set is negative and fails the lower bound.
      const length = header.readInt32BE(0);
      if (length < MIN_STARTUP_PACKET_LENGTH || length - 4 > MAX_STARTUP_PACKET_LENGTH) {
        fail(WireErrorCode.invalidStartupLength, 'invalid length of startup packet');
        return off;
      }
      body = Buffer.alloc(length - 4);
      bodyFill = 0;
    }
    const n = Math.min(body.length - bodyFill, chunk.length - off);
    chunk.copy(body, bodyFill, off, off + n);
    bodyFill += n;
    off += n;
    if (bodyFill === body.length) {
      const packet = body;
      body = undefined;
      decodeUntyped(packet);
    }
    return off;
  }

  function decodeUntyped(packet: Buffer): void {
    const code = packet.readUInt32BE(0);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      const ssl = code === SSL_REQUEST_CODE;
      if (packet.length !== 4) {
        fail(WireErrorCode.invalidStartupLength, 'invalid length of startup packet');
      } else if (ssl ? sslDone : gssDone) {
        // PostgreSQL treats a second request as an unknown protocol version; it is a client bug or an attack.
        fail(WireErrorCode.duplicateEncryptionRequest, 'duplicate encryption request');
      } else {
        if (ssl) sslDone = true;
        else gssDone = true;
        pendingRequest = ssl ? 'SSL request' : 'GSSAPI encryption request';
        phase = 'encryptionAnswer';
        out.push({ kind: ssl ? 'sslRequest' : 'gssEncRequest' });
      }
      return;
    }
    if (code === CANCEL_REQUEST_CODE) {
      const keyLength = packet.length - 8;
      if (keyLength < CANCEL_KEY_LENGTH_3_0 || keyLength > MAX_CANCEL_KEY_LENGTH) {
        fail(WireErrorCode.invalidCancelLength, 'invalid length of cancel request packet');
        return;
      }
      phase = 'closed';
      out.push({ kind: 'cancelRequest', pid: packet.readUInt32BE(4), secret: packet.subarray(8) });
      return;
    }
    const major = code >>> 16;
    const minor = code & 0xffff;
    if (major !== PROTOCOL_MAJOR) {
      fail(
        WireErrorCode.unsupportedProtocol,
        `unsupported frontend protocol ${major}.${minor}: server supports ${PROTOCOL_MAJOR}.0 to ${PROTOCOL_MAJOR}.${PROTOCOL_NEWEST_MINOR}`,
        SqlState.featureNotSupported,
      );
      return;
    }
    const startup = decodeParams(packet, major, minor);
    if (startup === undefined) return;
    phase = 'password';
    out.push(startup);
  }

  // Layout (protocol.sgml StartupMessage): pairs of NUL-terminated name and value, then one NUL that
  // must be the packet's last byte (postmaster: "expected terminator as last byte").
  function decodeParams(packet: Buffer, major: number, minor: number): StartupMessage | undefined {
    const params = new Map<string, string>();
    const protocolOptions: string[] = [];
    const last = packet.length - 1;
    let off = 4;
    for (;;) {
      if (off > last) {
        fail(WireErrorCode.invalidStartupLayout, 'invalid startup packet layout: expected terminator as last byte');
        return undefined;
      }
      if (packet[off] === 0) {
        if (off !== last) {
          fail(WireErrorCode.invalidStartupLayout, 'invalid startup packet layout: expected terminator as last byte');
          return undefined;
        }
        break;
      }
      const nameEnd = packet.indexOf(0, off);
      // The value must end before the final terminator: nameEnd < valueEnd < last.
      const valueEnd = nameEnd === -1 || nameEnd >= last ? -1 : packet.indexOf(0, nameEnd + 1);
      if (valueEnd === -1 || valueEnd >= last) {
        fail(WireErrorCode.invalidStartupLayout, 'invalid startup packet layout: expected terminator as last byte');
        return undefined;
      }
      let name: string;
      let value: string;
      try {
        name = utf8.decode(packet.subarray(off, nameEnd));
        value = utf8.decode(packet.subarray(nameEnd + 1, valueEnd));
      } catch {
        fail(WireErrorCode.invalidStartupEncoding, 'invalid byte sequence in startup packet');
        return undefined;
      }
      // PostgreSQL keeps the last of duplicate names; a proxy that read the first would check one value
      // and forward another, so a name repeated with a different value is refused. A repeat with the
      // same value is harmless (pg-protocol's serializer always appends client_encoding=UTF8).
      if (name.startsWith(PROTOCOL_OPTION_PREFIX)) {
        if (protocolOptions.includes(name)) {
          fail(WireErrorCode.duplicateStartupParameter, 'duplicate parameter in startup packet');
          return undefined;
        }
        protocolOptions.push(name);
      } else {
        const seen = params.get(name);
        if (seen !== undefined && seen !== value) {
          fail(WireErrorCode.duplicateStartupParameter, 'duplicate parameter in startup packet');
          return undefined;
        }
        if (seen === undefined) params.set(name, value);
      }
      off = valueEnd + 1;
    }
    return { kind: 'startup', major, minor, params, protocolOptions };
  }

  /** Reads one typed message (type byte, int32 length, body); only 'p' and 'X' are expected here. */
  function readTyped(chunk: Buffer, off: number): number {
    if (body === undefined) {
      if (headerFill === 0) {
        const type = chunk[off] as number;
        if (type !== FrontendType.password && type !== FrontendType.terminate) {
          fail(WireErrorCode.unexpectedMessage, `expected password response, got message type ${type}`);
          return off;
        }
      }
      const n = Math.min(HEADER_MAX - headerFill, chunk.length - off);
      chunk.copy(header, headerFill, off, off + n);
      headerFill += n;
      off += n;
      if (headerFill < HEADER_MAX) return off;
      headerFill = 0;
      const type = header[0];
      const length = header.readInt32BE(1);
      if (type === FrontendType.terminate) {
        if (length !== 4) {
          fail(WireErrorCode.invalidMessageLength, 'invalid message length');
        } else {
          phase = 'closed';
          out.push({ kind: 'terminate' });
        }
        return off;
      }
      if (length - 4 > MAX_PASSWORD_BODY_LENGTH) {
        // The body is never read: the stream is abandoned and the session answers 28P01.
        phase = 'closed';
        out.push({ kind: 'passwordTooLong', length });
        return off;
      }
      // At least the terminating NUL.
      if (length < 5) {
        fail(WireErrorCode.invalidPasswordPacket, 'invalid password packet size');
        return off;
      }
      body = Buffer.alloc(length - 4);
      bodyFill = 0;
    }
    const n = Math.min(body.length - bodyFill, chunk.length - off);
    chunk.copy(body, bodyFill, off, off + n);
    bodyFill += n;
    off += n;
    if (bodyFill < body.length) return off;
    const packet = body;
    body = undefined;
    // auth.c recv_password_packet: the string must fill the message exactly.
    if (packet.indexOf(0) !== packet.length - 1) {
      fail(WireErrorCode.invalidPasswordPacket, 'invalid password packet size');
      return off;
    }
    phase = 'handover';
    out.push({ kind: 'password', password: packet.toString('utf8', 0, packet.length - 1) });
    return off;
  }

  return {
    push(chunk: Buffer): StartupEvent[] {
      out = [];
      let off = 0;
      while (off < chunk.length) {
        if (phase === 'startup') {
          if (!seenAny) {
            seenAny = true;
            if (chunk[off] === TLS_HANDSHAKE_CONTENT_TYPE) {
              phase = 'handover';
              out.push({ kind: 'directTls' });
            }
            continue;
          }
          off = readUntyped(chunk, off);
        } else if (phase === 'password') {
          off = readTyped(chunk, off);
        } else if (phase === 'handover') {
          keep(off === 0 ? chunk : chunk.subarray(off));
          off = chunk.length;
        } else if (phase === 'encryptionAnswer') {
          fail(WireErrorCode.dataAfterEncryptionRequest, `received unencrypted data after ${pendingRequest}`);
        } else {
          break;
        }
      }
      const events = out;
      out = [];
      return events;
    },
    continuePlaintext(): void {
      // 'closed': a violation in the same push already ended the framer; the session sends that instead.
      if (phase === 'closed') return;
      if (phase !== 'encryptionAnswer') throw new Error(`continuePlaintext() in phase ${phase}`);
      phase = 'startup';
    },
    takeRest(): Buffer {
      const bytes = rest.length === 1 ? (rest[0] as Buffer) : Buffer.concat(rest, restBytes);
      rest = [];
      restBytes = 0;
      return bytes;
    },
    get phase(): StartupPhase {
      return phase;
    },
  };
}

/**
 * What NegotiateProtocolVersion must say for this StartupMessage, or undefined when none is needed
 * (protocol.sgml: sent when the client asks for a newer minor version or for `_pq_.` options).
 */
export function protocolNegotiation(
  startup: StartupMessage,
): { readonly newestMinor: number; readonly unsupportedOptions: readonly string[] } | undefined {
  if (startup.minor <= PROTOCOL_NEWEST_MINOR && startup.protocolOptions.length === 0) return undefined;
  return { newestMinor: PROTOCOL_NEWEST_MINOR, unsupportedOptions: startup.protocolOptions };
}
