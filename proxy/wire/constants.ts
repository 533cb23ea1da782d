// Protocol numbers and length bounds of the PostgreSQL frontend/backend protocol, each with its origin.

/** Protocol version words are (major << 16) | minor (protocol.sgml, "StartupMessage"). */
export const PROTOCOL_MAJOR = 3;
/** rolegate speaks 3.0 only; a client asking for 3.x (x > 0) gets NegotiateProtocolVersion. */
export const PROTOCOL_NEWEST_MINOR = 0;
/** 196608 = (3 << 16) | 0. */
export const PROTOCOL_3_0 = (3 << 16) | 0;

/** SSLRequest code (1234 << 16) | 5679 (src/include/libpq/pqcomm.h NEGOTIATE_SSL_CODE). */
export const SSL_REQUEST_CODE = 80877103;
/** GSSENCRequest code (1234 << 16) | 5680 (pqcomm.h NEGOTIATE_GSS_CODE). */
export const GSSENC_REQUEST_CODE = 80877104;
/** CancelRequest code (1234 << 16) | 5678 (pqcomm.h CANCEL_REQUEST_CODE). */
export const CANCEL_REQUEST_CODE = 80877102;

/**
 * pqcomm.h MAX_STARTUP_PACKET_LENGTH. PostgreSQL compares it with the packet length *minus the
 * length word* (postmaster's ProcessStartupPacket), so the largest accepted length field is 10004.
 */
export const MAX_STARTUP_PACKET_LENGTH = 10000;
/** The length word plus the 4-byte code/version: the shortest untyped packet (SSLRequest). */
export const MIN_STARTUP_PACKET_LENGTH = 8;

/** The 4-byte secret of protocol 3.0. */
export const CANCEL_KEY_LENGTH_3_0 = 4;
/**
 * Protocol 3.2 (PostgreSQL 18) lets the secret run to the end of the message, at most 256 bytes
 * (protocol.sgml, BackendKeyData). The server itself generates 32 (procsignal.h MAX_CANCEL_KEY_LENGTH).
 */
export const MAX_CANCEL_KEY_LENGTH = 256;

/** docs/design.md §2 step 4: tokens up to 65,530 bytes. */
export const MAX_TOKEN_BYTES = 65530;
/**
 * A PasswordMessage body is the token plus its NUL. 65,531 + the length word = 65,535, which is also
 * PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH bound on an authentication message (libpq/auth.c).
 */
export const MAX_PASSWORD_BODY_LENGTH = MAX_TOKEN_BYTES + 1;

/**
 * Bytes the startup framer keeps after the password (or a direct-TLS ClientHello) for the session to
 * hand on. The session pauses the socket at that point, so only what was already in flight arrives;
 * the bound stops a client from parking data in the proxy while authentication runs.
 */
export const MAX_HANDOVER_BYTES = 256 * 1024;

/** A TLS record's first byte for a handshake (RFC 8446 §5.1 ContentType.handshake). PostgreSQL 17
 *  direct TLS: a connection whose first byte is this is a ClientHello, not a startup packet. */
export const TLS_HANDSHAKE_CONTENT_TYPE = 0x16;

/** Startup parameters with this prefix are protocol options (protocol.sgml, "Protocol versions"). */
export const PROTOCOL_OPTION_PREFIX = '_pq_.';
