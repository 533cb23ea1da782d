// The admin HTTP listener's express app: health, readiness, Prometheus metrics, SCIM at /scim/v2,
// JSON for every other outcome (never an HTML error page, never internal text).
import express from 'express';
import type { Express, NextFunction, Request, Response, Router } from 'express';
import { stderrLogger, type ErrorLogger } from '../lib/error-logger.js';

export type Readiness = { ok: true } | { ok: false; reason: string };

/** The part of a pino logger the app uses for errors it does not show the client. */
export type AdminLogger = ErrorLogger;

export interface AdminAppOptions {
  scim: Router;
  /** docs/design.md §5: store, JWKS and upstream reachable. */
  ready: () => Promise<Readiness>;
  metrics: { contentType: string; render(): Promise<string> };
  /** Mounts further routes (e.g. /admin/sessions) before the final 404. */
  extra?: (app: Express) => void;
  logger?: AdminLogger;
}

function sendJson(res: Response, status: number, body: Record<string, unknown>): void {
  res.status(status).type('application/json').send(JSON.stringify(body));
}

function sendText(res: Response, status: number, text: string): void {
  res.status(status).type('text/plain').send(`${text}\n`);
}

/** Builds the admin app; the caller owns listening (address, TLS) and shutdown. */
export function createAdminApp(opts: AdminAppOptions): Express {
  const logger = opts.logger ?? stderrLogger;
  const app = express();
  app.disable('x-powered-by');
  // SCIM advertises etag.supported:false; express's automatic ETag/304 would contradict it (D19).
  app.set('etag', false);

  app.get('/healthz', (_req, res) => sendText(res, 200, 'ok'));

  app.get('/readyz', async (_req, res) => {
    let state: Readiness;
    try {
      state = await opts.ready();
    } catch (err) {
      logger.error({ err }, 'readiness check failed');
      state = { ok: false, reason: 'readiness check failed' };
    }
    res.setHeader('Cache-Control', 'no-store');
    if (state.ok) sendText(res, 200, 'ok');
    else sendText(res, 503, state.reason);
  });

  app.get('/metrics', async (_req, res) => {
    const text = await opts.metrics.render();
    res.status(200).setHeader('Content-Type', opts.metrics.contentType);
    res.send(text);
  });

  app.use('/scim/v2', opts.scim);
  opts.extra?.(app);

  app.use((_req: Request, res: Response) => sendJson(res, 404, { error: 'not_found', detail: 'No such endpoint' }));

  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      logger.error({ err, method: req.method, path: req.path }, 'admin response failed after headers were sent');
      res.destroy();
      return;
    }
    const status = typeof err === 'object' && err !== null ? (err as { status?: unknown; statusCode?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode : undefined;
    if (typeof status === 'number' && status >= 400 && status <= 499) {
      sendJson(res, status, { error: 'bad_request', detail: 'Request refused' });
      return;
    }
    logger.error({ err, method: req.method, path: req.path }, 'admin request failed');
    sendJson(res, 500, { error: 'internal', detail: 'Internal server error' });
  });

  return app;
}
