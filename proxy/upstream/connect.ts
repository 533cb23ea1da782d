// Logs in to PostgreSQL as a role (trust, cleartext, md5, SCRAM-SHA-256, TLS client certificate) and hands over the socket at ReadyForQuery.

import type net from 'node:net';
import type tls from 'node:tls';
import { serialize } from 'pg-protocol';
import { UpstreamError, UpstreamErrorCode, fromServerError, fromSocketError } from './errors.js';
import { upstreamStartup } from './startup-packet.js';
import {
  ServerMessage,
  createFrameReader,
  decodeAuth,
  decodeBackendKeyData,
  decodeFields,
  decodeParameterStatus,
  decodeReadyForQuery,
} from './login-frames.js';
import type { Frame } from './login-frames.js';
import { md5PasswordResponse } from './md5.js';
import { SCRAM_SHA_256, createScramClient } from './scram.js';
import type { ScramClient } from './scram.js';
import { checkTlsConfig, openTransport, verifiesServer } from './transport.js';
import type { ClientCertificate, UpstreamTls } from './transport.js';

export type UpstreamCredentials = { password: string } | ClientCertificate;

export type UpstreamLoginOptions = {
  host: string;
  port: number;
  tls: UpstreamTls;
  role: string;
  database: string;
  /** Startup parameters, already allow-listed; `user`, `database`, `replication` and `_pq_.*` are ignored. */
  params: Readonly<Record<string, string>>;
  credentials: UpstreamCredentials;
  /** Deadline for the whole login: TCP, TLS, authentication, up to ReadyForQuery. */
  connectTimeoutMs: number;
  signal?: AbortSignal;
  /**
   * Send a cleartext password when the server asks for one although TLS did not authenticate the
   * server (mode disable, or require without a CA), where anyone on the path could read it.
   */
  allowUnverifiedCleartextPassword?: boolean;
};

export type BackendKey = { processId: number; secretKey: Buffer };

export type UpstreamConnection = {
  /**
   * Paused, with no listeners of ours: attach an 'error' listener in the same tick as the await
   * that received this, then resume or pipe.
   */
  socket: net.Socket | tls.TLSSocket;
  /** ParameterStatus values in the order first received. */
  parameters: Map<string, string>;
  backendKey: BackendKey;
  /** Transaction status from the first ReadyForQuery ('I' after a fresh login). */
  transactionStatus: string;
  /** Bytes read past ReadyForQuery; relay them before anything else from `socket`. */
  pending: Buffer;
  tls?: { protocol: string; cipher: string };
};

// Closed-over login state; stages are ordered so that a server cannot go backwards or skip ahead.
type AuthStage = 'start' | 'password-sent' | 'sasl-first' | 'sasl-final' | 'sasl-verified' | 'done';

/** Connects and logs in as `opts.role`; rejects with an UpstreamError. */
export async function connectUpstream(opts: UpstreamLoginOptions): Promise<UpstreamConnection> {
  const clientCert = 'cert' in opts.credentials ? opts.credentials : undefined;
  checkTlsConfig(opts.tls, clientCert);
  // Encode before dialling: a bad parameter must not cost a connection.
  const startup = upstreamStartup(opts.role, opts.database, opts.params);

  const sockets: net.Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UpstreamError(UpstreamErrorCode.timeout, `no ReadyForQuery within ${opts.connectTimeoutMs} ms`)),
      opts.connectTimeoutMs,
    );
    const signal = opts.signal;
    if (signal === undefined) return;
    onAbort = () => reject(new UpstreamError(UpstreamErrorCode.aborted, 'login aborted', { cause: signal.reason }));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });

  try {
    // Promise.race subscribes to both, so the loser's later rejection is handled.
    return await Promise.race([login(opts, clientCert, startup, (s) => sockets.push(s)), deadline]);
  } catch (err) {
    for (const s of sockets) s.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) opts.signal?.removeEventListener('abort', onAbort);
  }
}

async function login(
  opts: UpstreamLoginOptions,
  clientCert: ClientCertificate | undefined,
  startup: Buffer,
  track: (socket: net.Socket) => void,
): Promise<UpstreamConnection> {
  const socket = await openTransport(opts.host, opts.port, opts.tls, clientCert, track);
  const password = 'password' in opts.credentials ? opts.credentials.password : undefined;
  const io = readFrames(socket);
  socket.write(startup);

  let stage: AuthStage = 'start';
  let scram: ScramClient | undefined;
  const parameters = new Map<string, string>();
  let backendKey: BackendKey | undefined;

  const needPassword = (method: string): string => {
    if (stage !== 'start') throw protocolError(`${method} request after authentication started`);
    if (password === undefined) {
      throw new UpstreamError(UpstreamErrorCode.auth, `server asked for ${method} but the role has a client certificate`);
    }
    return password;
  };

  for (;;) {
    const frame = await io.next();
    switch (frame.type) {
      case ServerMessage.auth: {
        const request = decodeAuth(frame.body);
        switch (request.kind) {
          case 'ok':
            // SCRAM is mutual (RFC 5802 §9): a server that skips SASLFinal has not proved it knows
            // the password, so its Ok means nothing; an impostor would otherwise get our session.
            if (stage === 'done') throw protocolError('second AuthenticationOk');
            if (stage === 'sasl-first' || stage === 'sasl-final') {
              throw new UpstreamError(UpstreamErrorCode.auth, 'AuthenticationOk before the server proved the password');
            }
            stage = 'done';
            break;
          case 'cleartext': {
            const secret = needPassword('a cleartext password');
            if (!verifiesServer(opts.tls) && opts.allowUnverifiedCleartextPassword !== true) {
              throw new UpstreamError(
                UpstreamErrorCode.auth,
                'server asked for a cleartext password over a connection whose server is not verified',
              );
            }
            socket.write(serialize.password(secret));
            stage = 'password-sent';
            break;
          }
          case 'md5':
            socket.write(serialize.password(md5PasswordResponse(opts.role, needPassword('an md5 password'), request.salt)));
            stage = 'password-sent';
            break;
          case 'sasl': {
            const secret = needPassword('a SASL exchange');
            // SCRAM-SHA-256-PLUS (channel binding) is not implemented; the gs2 header says so ("n").
            if (!request.mechanisms.includes(SCRAM_SHA_256)) {
              throw new UpstreamError(UpstreamErrorCode.auth, `no supported SASL mechanism in ${request.mechanisms.join(' ')}`);
            }
            scram = createScramClient({ password: secret });
            socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.clientFirst));
            stage = 'sasl-first';
            break;
          }
          case 'saslContinue':
            if (stage !== 'sasl-first' || scram === undefined) throw protocolError('unexpected SASLContinue');
            socket.write(serialize.sendSCRAMClientFinalMessage(await scram.clientFinal(request.data)));
            stage = 'sasl-final';
            break;
          case 'saslFinal':
            if (stage !== 'sasl-final' || scram === undefined) throw protocolError('unexpected SASLFinal');
            scram.verifyServerFinal(request.data);
            stage = 'sasl-verified';
            break;
          case 'unsupported':
            throw new UpstreamError(UpstreamErrorCode.auth, `unsupported authentication request ${request.code}`);
        }
        break;
      }
      case ServerMessage.errorResponse:
        throw fromServerError(decodeFields(frame.body));
      case ServerMessage.noticeResponse:
        decodeFields(frame.body);
        break;
      case ServerMessage.parameterStatus: {
        if (stage !== 'done') throw protocolError('ParameterStatus before AuthenticationOk');
        const { name, value } = decodeParameterStatus(frame.body);
        if (!parameters.has(name) && parameters.size >= MAX_PARAMETERS) throw protocolError('too many ParameterStatus');
        parameters.set(name, value);
        break;
      }
      case ServerMessage.backendKeyData:
        if (stage !== 'done' || backendKey !== undefined) throw protocolError('unexpected BackendKeyData');
        backendKey = decodeBackendKeyData(frame.body);
        break;
      case ServerMessage.readyForQuery: {
        if (stage !== 'done') throw protocolError('ReadyForQuery before AuthenticationOk');
        // PostgreSQL always sends BackendKeyData before the first ReadyForQuery; without it the
        // proxy could not honour the client's cancel key.
        if (backendKey === undefined) throw protocolError('no BackendKeyData before ReadyForQuery');
        const transactionStatus = decodeReadyForQuery(frame.body);
        const pending = io.detach();
        const connection: UpstreamConnection = { socket, parameters, backendKey, transactionStatus, pending };
        if ('getCipher' in socket) {
          connection.tls = { protocol: socket.getProtocol() ?? 'unknown', cipher: socket.getCipher().name };
        }
        return connection;
      }
      default:
        // Includes NegotiateProtocolVersion: we ask for 3.0 with no _pq_ options, so it has no reason to come.
        throw protocolError(`unexpected message type ${frame.type} during login`);
    }
  }
}

// PostgreSQL reports ~15 GUC_REPORT settings (more with extensions); bound the map a server can grow.
const MAX_PARAMETERS = 256;

type FrameIo = {
  next(): Promise<Frame>;
  /** Pauses the socket, removes our listeners, and returns the unread bytes. */
  detach(): Buffer;
};

function readFrames(socket: net.Socket): FrameIo {
  const reader = createFrameReader();
  let failure: UpstreamError | undefined;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const onData = (chunk: Buffer): void => {
    try {
      reader.push(chunk);
    } catch (err) {
      failure ??= fromSocketError(err, 'login');
      socket.pause();
    }
    notify();
  };
  const onError = (err: Error): void => {
    failure ??= fromSocketError(err, 'login');
    notify();
  };
  const onClose = (): void => {
    failure ??= new UpstreamError(UpstreamErrorCode.unreachable, 'server closed the connection during login');
    notify();
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
  socket.resume();

  return {
    async next() {
      for (;;) {
        // Frames already received come first: a server sends ErrorResponse and then closes.
        const frame = reader.next();
        if (frame !== undefined) return frame;
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
    detach() {
      // pause() before removing 'data': a flowing stream without listeners drops data.
      socket.pause();
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      return reader.rest();
    },
  };
}

function protocolError(detail: string): UpstreamError {
  return new UpstreamError(UpstreamErrorCode.protocol, detail);
}
