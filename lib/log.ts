// The process logger (pino, JSON lines on stdout). Secrets are redacted by path as a second line of
// defence: code must not log them in the first place.
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

// Audit events no longer pass through the process log (they go to the audit file, audit/writer.ts),
// so a `token` one level down is redacted too.
const REDACT = [
  'password', '*.password', 'token', '*.token', 'tokens', '*.tokens', 'clientSecret', '*.clientSecret',
  'authorization', '*.authorization', 'req.headers.authorization', 'credentials', '*.credentials',
];

/** A logger at `level`; `destination` defaults to stdout (tests pass a stream). */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  const opts = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  return destination ? pino(opts, destination) : pino(opts);
}
