// What the global setup tells every test file about the run's PostgreSQL cluster.

export interface PgInfo {
  host: '127.0.0.1';
  port: number;
  superuser: 'postgres';
  password: string;
  /** postgres://postgres:...@127.0.0.1:port/postgres with TLS verify-full against the run's CA. */
  superuserUrl: string;
  caCertPath: string;
  caKeyPath: string;
  serverCertPath: string;
  binDir: string;
  dir: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: PgInfo;
  }
}
