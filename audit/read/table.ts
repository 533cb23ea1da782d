// Human output of the audit readers: a plain table sized to the terminal (like psql's aligned
// format), the widest column cut with `…` when the row would not fit.

/** Renders rows under headers; `width` is the terminal's (undefined: no limit, e.g. a pipe). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], width: number | undefined): string {
  const cols = headers.length;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  if (width !== undefined) {
    const total = (): number => widths.reduce((a, b) => a + b, 0) + (cols - 1) * 2;
    // Shrink the widest column first, down to 12 characters, until the row fits.
    while (total() > width) {
      let widest = 0;
      for (let i = 1; i < cols; i++) if ((widths[i] as number) > (widths[widest] as number)) widest = i;
      if ((widths[widest] as number) <= 12) break;
      widths[widest] = Math.max(12, (widths[widest] as number) - (total() - width));
    }
  }
  const fit = (text: string, w: number): string => (text.length > w ? `${text.slice(0, Math.max(0, w - 1))}…` : text.padEnd(w));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cols - 1 ? fit(c, widths[i] as number).trimEnd() : fit(c, widths[i] as number))).join('  ');
  const out = [line(headers), widths.map((w) => '-'.repeat(w)).join('  ')];
  for (const r of rows) out.push(line(r));
  return `${out.join('\n')}\n`;
}

/** `2026-11-23 09:05:12` from an audit ts (UTC). */
export function shortTime(ts: string): string {
  return `${ts.slice(0, 10)} ${ts.slice(11, 19)}`;
}

/** `850 ms`, `12.4 s`, `42 min`, `3 h 5 min`. */
export function humanDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const min = Math.round(ms / 60_000);
  if (min < 60) return `${min} min`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}
