// Types for the small part of oidc-provider 9 (which ships none) that the development issuer uses.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The koa context oidc-provider passes to configuration callbacks (only what we read). */
  export interface ProviderContext {
    oidc: {
      /** The parsed request body of form/JSON POST endpoints. */
      body?: Record<string, unknown>;
      params?: Record<string, unknown>;
      client?: { clientId: string };
    };
  }

  /** An issued token model, as seen by extraTokenClaims / ttl / format customizers. */
  export interface ProviderToken {
    kind: string;
    clientId?: string;
    accountId?: string;
  }

  export type Configuration = Record<string, unknown>;

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
  };

  export default Provider;
}
