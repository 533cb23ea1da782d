import { describe, expect, it } from 'vitest';
import { parseOptions, upstreamStartupParams } from '../../proxy/session/startup-params.js';

const allowed = ['statement_timeout', 'lock_timeout', 'search_path'];
const p = (o: Record<string, string>) => new Map(Object.entries(o));

describe('upstream startup parameters', () => {
  it('forwards the allow-list and drops the rest (user is never forwarded)', () => {
    const r = upstreamStartupParams(p({ user: 'alice', database: 'app', application_name: 'psql', client_encoding: 'UTF8', DateStyle: 'ISO', TimeZone: 'UTC', extra_float_digits: '3', search_path: 'a', session_authorization: 'postgres', role: 'postgres', work_mem: '1GB' }), allowed);
    expect(r).toEqual({ ok: true, params: { database: 'app', application_name: 'psql', client_encoding: 'UTF8', DateStyle: 'ISO', TimeZone: 'UTC', extra_float_digits: '3', search_path: 'a' } });
  });

  it.each([
    ['-c statement_timeout=5s', '-c statement_timeout=5s'],
    ['-cstatement_timeout=5s  --lock-timeout=1s', '-c statement_timeout=5s -c lock_timeout=1s'],
    ['-c search_path=my\\ schema', '-c search_path=my\\ schema'],
  ])('allows options %j', (options, forwarded) => {
    expect(upstreamStartupParams(p({ options }), allowed)).toEqual({ ok: true, params: { options: forwarded } });
  });

  it.each([
    ['-c role=postgres', 'option "role" is not allowed through rolegate'],
    ['-c session_authorization=postgres', 'option "session_authorization" is not allowed through rolegate'],
    ['-c statement_timeout=1 -c default_transaction_read_only=off', 'option "default_transaction_read_only" is not allowed through rolegate'],
    ['-d 5', 'only "-c name=value" settings are allowed in options, not "-d"'],
    ['-c statement_timeout', 'option "statement_timeout" must be name=value'],
  ])('refuses options %j', (options, message) => {
    expect(upstreamStartupParams(p({ options }), allowed)).toEqual({ ok: false, sqlstate: '42501', message });
  });

  it('refuses replication connections', () => {
    expect(upstreamStartupParams(p({ replication: 'database' }), allowed)).toMatchObject({ ok: false, sqlstate: '0A000' });
    expect(upstreamStartupParams(p({ replication: 'false' }), allowed)).toMatchObject({ ok: true });
  });

  it('splits words like the server does', () => {
    expect(parseOptions('  -c a=1\t-c b=x\\ y ')).toEqual({ ok: true, settings: [{ name: 'a', value: '1' }, { name: 'b', value: 'x y' }] });
  });
});
