// Times in `--since` / `--until`: RFC 3339 (`2026-11-23T09:00:00Z`), a date (`2026-11-23`, UTC
// midnight), a date and time without zone (UTC), or a duration back from now (`30m`, `2h`, `7d`).
import { CodedError } from '../../lib/coded-error.js';

const AGO = /^(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The instant as an audit `ts` string (UTC, milliseconds), comparable with `ts` as text. */
export function parseTimeArg(text: string, now: number): string {
  const t = text.trim();
  const ago = AGO.exec(t);
  if (ago !== null) return new Date(now - Number(ago[1]) * UNIT_MS[ago[2] as keyof typeof UNIT_MS]).toISOString();
  let iso = t;
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) iso = `${t}T00:00:00Z`;
  else if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(t)) iso = `${t.replace(' ', 'T')}Z`;
  const ms = Date.parse(iso);
  if (!/^\d{4}-\d{2}-\d{2}/.test(t) || Number.isNaN(ms)) {
    throw new CodedError('audit_bad_time', `"${text}" is not a time (examples: 2026-11-23, 2026-11-23T09:00:00Z, 2h)`);
  }
  return new Date(ms).toISOString();
}
