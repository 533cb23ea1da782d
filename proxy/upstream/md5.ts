// The MD5 password response: "md5" + md5hex(md5hex(password + user) + salt) (protocol docs, AuthenticationMD5Password).

import { createHash } from 'node:crypto';

/** Computes the PasswordMessage body for AuthenticationMD5Password; `user` is the startup role name. */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): string {
  // The inner digest is what pg_authid stores for an md5 password; the salt makes the reply
  // single-use. MD5 is deprecated in PostgreSQL 18 but still offered by servers we must reach.
  const inner = createHash('md5').update(password, 'utf8').update(user, 'utf8').digest('hex');
  return 'md5' + createHash('md5').update(inner, 'latin1').update(salt).digest('hex');
}
