// The SCIM 2.0 HTTP surface (RFC 7644) under /scim/v2: routes, auth and body order, SCIM-shaped
// responses for every outcome (never HTML, never internal text), request metrics.
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { BearerTokens } from '../../lib/bearer-tokens.js';
import { stderrLogger, type ErrorLogger } from '../../lib/error-logger.js';
import { ACTOR_LOCAL, requireBearer } from './auth.js';
import { scimJsonBody } from './body.js';
import { resourceTypeById, resourceTypesList, schemaById, schemasList, serviceProviderConfig } from './discovery.js';
import { ScimError, ScimType, scimErrorBody } from '../errors.js';
import type { ResourceType } from '../schema.js';
import type { ListQuery, ProjectionQuery, ScimRequestContext, ScimService } from '../service.js';

/** RFC 7644 §3.1: the SCIM media type, also on errors. */
export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

/** The part of a pino logger the router uses for errors it does not show the client. */
export type ScimLogger = ErrorLogger;

export interface ScimRouterOptions {
  service: ScimService;
  /** Accepted bearer tokens (several, for rotation); an empty list admits nobody. A BearerTokens can be swapped live. */
  tokens: readonly string[] | BearerTokens;
  metrics?: { onRequest(method: string, status: number): void };
  logger?: ScimLogger;
  /** Public URL of the SCIM root for `meta.location` and `Location`; by default taken from the request. */
  publicUrl?: string;
}

const KNOWN_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

// A Host header is echoed into resource locations; anything but a plain host[:port] is not trusted.
const HOST_PATTERN = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function send(res: Response, status: number, body: Record<string, unknown>): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', SCIM_CONTENT_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  // Responses carry directory data; no intermediary should keep them.
  res.setHeader('Cache-Control', 'no-store');
  res.end(text);
}

function sendError(res: Response, err: ScimError): void {
  send(res, err.status, scimErrorBody(err));
}

/** A query parameter given at most once; repeated parameters are ambiguous and refused. */
function param(req: Request, name: string): string | undefined {
  const v: unknown = (req.query as Record<string, unknown>)[name];
  if (v === undefined) return undefined;
  if (typeof v === 'string') return v;
  throw new ScimError(400, ScimType.invalidValue, `Query parameter ${name} must be given once`);
}

function projectionQuery(req: Request): ProjectionQuery {
  return { attributes: param(req, 'attributes'), excludedAttributes: param(req, 'excludedAttributes') };
}

function listQuery(req: Request): ListQuery {
  return {
    ...projectionQuery(req),
    filter: param(req, 'filter'),
    startIndex: param(req, 'startIndex'),
    count: param(req, 'count'),
  };
}

/** Public text for HTTP errors raised by express itself (e.g. an undecodable path parameter). */
function fromHttpError(err: unknown): ScimError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { status?: unknown; statusCode?: unknown; type?: unknown };
  const status = typeof e.status === 'number' ? e.status : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  if (status === undefined || status < 400 || status > 499) return undefined;
  if (status === 413) return new ScimError(413, undefined, 'Request body too large');
  if (status === 415) return new ScimError(415, undefined, 'Unsupported media type');
  if (status === 400) return new ScimError(400, ScimType.invalidSyntax, 'Malformed request');
  return new ScimError(status, undefined, 'Request refused');
}

function methodNotAllowed(allow: string): (req: Request, res: Response) => void {
  return (_req, res) => {
    res.setHeader('Allow', allow);
    sendError(res, new ScimError(405, undefined, `Method not allowed; allowed: ${allow}`));
  };
}

function notImplemented(what: string): (req: Request, res: Response) => void {
  return (_req, res) => sendError(res, new ScimError(501, undefined, `${what} is not supported`));
}

/**
 * The SCIM service provider as an express Router, to be mounted at `/scim/v2` (D1).
 * Order per request: metrics hook, bearer auth (D2), then the route; bodies are read only by
 * write routes and only after auth. Every response, errors included, is `application/scim+json`.
 */
export function createScimRouter(opts: ScimRouterOptions): Router {
  const { service, metrics } = opts;
  const logger = opts.logger ?? stderrLogger;
  const publicUrl = opts.publicUrl?.replace(/\/+$/, '');
  const body = scimJsonBody();
  const router = express.Router();

  const context = (req: Request, res: Response): ScimRequestContext => {
    const host = req.get('host');
    const baseUrl = publicUrl ?? `${req.protocol}://${host !== undefined && HOST_PATTERN.test(host) ? host : 'localhost'}${req.baseUrl}`;
    return { baseUrl, actor: String(res.locals[ACTOR_LOCAL]) };
  };

  if (metrics !== undefined) {
    router.use((req, res, next) => {
      const method = KNOWN_METHODS.has(req.method) ? req.method : 'OTHER';
      res.on('finish', () => metrics.onRequest(method, res.statusCode));
      next();
    });
  }
  router.use(requireBearer(opts.tokens));

  const resourceRoutes = (path: '/Users' | '/Groups', rt: ResourceType): void => {
    router.all(`${path}/.search`, notImplemented('POST .search'));
    router
      .route(path)
      .get(async (req, res) => send(res, 200, await service.list(rt, listQuery(req), context(req, res))))
      .post(body, async (req, res) => {
        const ctx = context(req, res);
        const { id, resource } = await service.create(rt, req.body, projectionQuery(req), ctx);
        res.setHeader('Location', `${ctx.baseUrl}${path}/${encodeURIComponent(id)}`);
        send(res, 201, resource);
      })
      .all(methodNotAllowed('GET, POST'));
    router
      .route(`${path}/:id`)
      .get(async (req, res) => send(res, 200, await service.get(rt, req.params.id!, projectionQuery(req), context(req, res))))
      .put(body, async (req, res) =>
        send(res, 200, await service.replace(rt, req.params.id!, req.body, projectionQuery(req), context(req, res))),
      )
      // D20: 200 with the full resource, so `attributes` applies to it too.
      .patch(body, async (req, res) =>
        send(res, 200, await service.patch(rt, req.params.id!, req.body, projectionQuery(req), context(req, res))),
      )
      .delete(async (req, res) => {
        await service.delete(rt, req.params.id!, context(req, res));
        res.status(204).end();
      })
      .all(methodNotAllowed('GET, PUT, PATCH, DELETE'));
  };
  resourceRoutes('/Users', 'User');
  resourceRoutes('/Groups', 'Group');

  // D21 (RFC 7644 §3.7, §3.11): advertised as unsupported.
  router.all('/Bulk', notImplemented('Bulk'));
  router.all(['/Me', '/Me/*rest'], notImplemented('/Me'));
  router.all('/.search', notImplemented('POST .search'));

  // D22 (RFC 7644 §4): read-only; a filter is refused so nobody mistakes it for having applied.
  const discovery = (path: string, render: (req: Request, baseUrl: string) => Record<string, unknown>): void => {
    router
      .route(path)
      .get((req, res) => {
        if ((req.query as Record<string, unknown>).filter !== undefined) {
          throw new ScimError(403, undefined, 'Filtering is not supported on discovery endpoints');
        }
        send(res, 200, render(req, context(req, res).baseUrl));
      })
      .all(methodNotAllowed('GET'));
  };
  discovery('/ServiceProviderConfig', (_req, base) => serviceProviderConfig(base, service.maxResults));
  discovery('/ResourceTypes', (_req, base) => resourceTypesList(base));
  discovery('/ResourceTypes/:name', (req, base) => resourceTypeById(String(req.params.name), base));
  discovery('/Schemas', (_req, base) => schemasList(base));
  discovery('/Schemas/:urn', (req, base) => schemaById(String(req.params.urn), base));

  router.use((_req: Request, res: Response) => {
    sendError(res, new ScimError(404, undefined, 'No such SCIM endpoint'));
  });

  router.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      logger.error({ err, method: req.method, path: req.path }, 'SCIM response failed after headers were sent');
      res.destroy();
      return;
    }
    if (err instanceof ScimError) {
      // A 5xx the store chose (it is unavailable) keeps its cause for the operator.
      if (err.status >= 500) logger.error({ err: err.cause ?? err, method: req.method, path: req.path }, err.detail);
      sendError(res, err);
      return;
    }
    const mapped = fromHttpError(err);
    if (mapped !== undefined) {
      sendError(res, mapped);
      return;
    }
    logger.error({ err, method: req.method, path: req.path }, 'SCIM request failed');
    sendError(res, new ScimError(500, undefined, 'Internal server error'));
  });

  return router;
}
