// Tokens of the SCIM filter language: brackets, parentheses, JSON string literals and bare words
// (attribute paths, operators, keywords, numbers). Classification of words is the parser's job.
import { badRequest, ScimType } from '../errors.js';

export type Token =
  | { readonly type: '(' | ')' | '[' | ']'; readonly pos: number }
  | { readonly type: 'word'; readonly text: string; readonly pos: number }
  | { readonly type: 'string'; readonly value: string; readonly pos: number };

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);
const PUNCT = new Set(['(', ')', '[', ']']);

/** Splits a filter into tokens; a malformed string literal is a 400 `invalidFilter`. */
export function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (WHITESPACE.has(c)) {
      i++;
    } else if (PUNCT.has(c)) {
      tokens.push({ type: c as '(' | ')' | '[' | ']', pos: i });
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      let value: unknown;
      try {
        // RFC 7644 §3.4.2.2: compValue strings are JSON strings (RFC 7159), escapes included.
        value = JSON.parse(text.slice(i, end + 1));
      } catch {
        throw badRequest(ScimType.invalidFilter, `Invalid filter: malformed string literal at position ${i}`);
      }
      tokens.push({ type: 'string', value: value as string, pos: i });
      i = end + 1;
    } else {
      const start = i;
      while (i < text.length && !WHITESPACE.has(text[i] as string) && !PUNCT.has(text[i] as string) && text[i] !== '"') i++;
      tokens.push({ type: 'word', text: text.slice(start, i), pos: start });
    }
  }
  return tokens;
}

/** Index of the closing quote of the string literal opening at `start`. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') i++;
    else if (c === '"') return i;
  }
  throw badRequest(ScimType.invalidFilter, `Invalid filter: unterminated string literal at position ${start}`);
}
