// Growing a byte buffer that is filled from the front: shared by the queued events' batch
// (audit/writer.ts) and the sealed lines (audit/appender.ts).

/** `buf` if it has `room` free bytes after `used`, else a buffer at least twice as large holding its first `used` bytes. */
export function withRoom(buf: Buffer<ArrayBuffer>, used: number, room: number): Buffer<ArrayBuffer> {
  if (buf.length - used >= room) return buf;
  const bigger = Buffer.allocUnsafeSlow(Math.max(2 * buf.length, used + room));
  buf.copy(bigger, 0, 0, used);
  return bigger;
}
