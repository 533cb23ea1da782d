// Configuration reload (docs/design.md §3: SIGHUP reloads roles, certificates and tokens), in-process:
// live sessions are decided again under the new roles, SCIM and admin tokens rotate at once, new
// connections get the new proxy certificate while live ones keep theirs, and a reload that cannot
// be read leaves the running configuration whole. The SIGHUP wiring itself is in cli/serve.test.ts.
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCert } from '../helpers/certs.js';
import { pgInfo } from '../helpers/postgres.js';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['engineering']);
  await stack.provision('bob@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

/** SHA-256 fingerprint of the certificate the proxy presents after SSLRequest. */
function proxyCertificate(): Promise<string> {
  return new Promise((resolve, reject) => {
    const raw = tcpConnect({ host: '127.0.0.1', port: stack.proxyPort }, () => {
      const req = Buffer.alloc(8);
      req.writeInt32BE(8, 0);
      req.writeInt32BE(80877103, 4);
      raw.write(req);
    });
    raw.once('error', reject);
    raw.once('data', (answer: Buffer) => {
      if (answer.toString('latin1') !== 'S') return reject(new Error(`SSLRequest answered ${answer.toString('latin1')}`));
      const tls = tlsConnect({ socket: raw, servername: 'localhost', rejectUnauthorized: false }, () => {
        const fp = tls.getPeerCertificate().fingerprint256;
        tls.destroy();
        resolve(fp);
      });
      tls.once('error', reject);
    });
  });
}

async function scimStatus(token: string): Promise<number> {
  const res = await fetch(`${stack.adminUrl}/scim/v2/Users?count=1`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

async function adminStatus(token: string): Promise<number> {
  const res = await fetch(`${stack.adminUrl}/admin/sessions`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

function fatalOf(client: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => client.once('error', resolve));
}

describe('reload', () => {
  it('re-decides live sessions, rotates SCIM and admin tokens, and serves the new certificate to new connections', async () => {
    const alice = await stack.connect('alice@corp.com');
    const bob = await stack.connect('bob@corp.com');
    const bobEnded = fatalOf(bob);
    expect((await alice.query('select current_user as u')).rows[0].u).toBe(stack.roles.reader);
    expect((await bob.query('select current_user as u')).rows[0].u).toBe(stack.roles.reader);
    const certBefore = await proxyCertificate();

    const newScimToken = randomBytes(24).toString('base64url');
    const adminToken = randomBytes(24).toString('base64url');
    const info = pgInfo();
    const nextCert = await issueCert({ cn: 'localhost', caCertPath: info.caCertPath, caKeyPath: info.caKeyPath, dir: stack.dir, fileName: 'proxy-rotated' });
    await stack.reload((c) => {
      // analysts lose the reader role; engineering keeps it.
      c['roles'][0].groups = ['engineering'];
      c['scim'].tokens = [newScimToken];
      c['admin'].tokens = [adminToken];
      c['proxy'].tls = { cert: nextCert.certPath, key: nextCert.keyPath };
    });

    // bob's grant is gone: his session ends with 57P01 like any revocation; alice's goes on.
    const err = await bobEnded;
    expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
    expect((await alice.query('select count(*)::int as n from items')).rows[0].n).toBe(2);
    // A new login of bob is refused; alice still logs in.
    await expect(stack.connect('bob@corp.com')).rejects.toMatchObject({ code: '28000' });
    const alice2 = await stack.connect('alice@corp.com');
    await alice2.end();

    // The old SCIM token stops working with the next request; the new one works.
    expect(await scimStatus(stack.scimToken)).toBe(401);
    expect(await scimStatus(newScimToken)).toBe(200);
    // The admin API had no token (refusing everyone); now it has one, and SCIM's is not it.
    expect(await adminStatus(adminToken)).toBe(200);
    expect(await adminStatus(newScimToken)).toBe(401);

    // New connections see the new certificate; it verifies against the same CA.
    const certAfter = await proxyCertificate();
    expect(certAfter).not.toBe(certBefore);
    expect((await alice.query('select 1 as one')).rows[0].one).toBe(1);
    await alice.end();
  });

  it('a reload that cannot read a file changes nothing', async () => {
    const before = await proxyCertificate();
    const token = randomBytes(24).toString('base64url');
    const scimWorking = [stack.scimToken, token];
    // Establish a known state first: two SCIM tokens.
    await stack.reload((c) => {
      c['scim'].tokens = scimWorking;
    });
    expect(await scimStatus(token)).toBe(200);
    await expect(
      stack.reload((c) => {
        c['scim'].tokens = ['only-this-one-would-work'];
        c['roles'][0].groups = ['ops'];
        c['proxy'].tls = { cert: `${stack.dir}/missing.crt`, key: `${stack.dir}/missing.key` };
      }),
    ).rejects.toThrow(/ENOENT|no such file/);
    // Tokens, roles and certificate are the ones before the failed reload.
    expect(await scimStatus(token)).toBe(200);
    expect(await scimStatus('only-this-one-would-work')).toBe(401);
    expect(await proxyCertificate()).toBe(before);
    const alice = await stack.connect('alice@corp.com');
    expect((await alice.query('select current_user as u')).rows[0].u).toBe(stack.roles.reader);
    await alice.end();
  });
});
