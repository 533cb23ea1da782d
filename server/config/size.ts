// Sizes in the config file: "100MB", "64KiB", "1GB", "4096" (bytes). KB/MB/GB are powers of 1000,
// KiB/MiB/GiB powers of 1024, as their names say.

const UNIT_BYTES = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 } as const;
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?$/i;

/** Bytes for a size string (or a plain number of bytes), or undefined when it is not one. */
export function parseSize(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : undefined;
  const m = SIZE.exec(text.trim());
  if (m === null) return undefined;
  const unit = (m[2] ?? 'b').toLowerCase() as keyof typeof UNIT_BYTES;
  const bytes = Math.round(Number(m[1]) * UNIT_BYTES[unit]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
