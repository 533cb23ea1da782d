// Quoting for the DDL the provisioner sends (role statements take no bind parameters): every
// identifier double-quoted, every literal single-quoted, both checked for what they cannot hold.
import { ProvisionError, ProvisionErrorCode } from './errors.js';

/** `"name"` with embedded quotes doubled; a NUL cannot be in an identifier and is refused. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new ProvisionError(ProvisionErrorCode.badName, 'an identifier cannot contain NUL');
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * `'text'` with embedded quotes doubled. Only for text without backslashes: with
 * standard_conforming_strings off a backslash would escape, so such text is refused rather than
 * depending on a server setting (the provisioner's literals are verifiers and markers it builds).
 */
export function quoteLiteral(text: string): string {
  if (text.includes('\\') || text.includes('\0')) {
    throw new ProvisionError(ProvisionErrorCode.badName, 'a literal of the provisioner cannot contain a backslash or NUL');
  }
  return `'${text.replace(/'/g, "''")}'`;
}
