// What the audit log and the session list know of a session's client end of the connection.

export interface ClientInfo {
  readonly address: string;
  readonly port: number;
  /** Set once the TLS handshake completed. */
  tls?: { version: string; cipher: string };
}
