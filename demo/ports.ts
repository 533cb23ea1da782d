// Free loopback ports for the parts of the demo that cannot bind port 0 themselves (PostgreSQL).
import { createServer } from 'node:net';

/**
 * A TCP port that was free on 127.0.0.1 a moment ago. Another process may take it before it is used,
 * so callers that hand it to a child process retry with a new one when the bind fails.
 */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
