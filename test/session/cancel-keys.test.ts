// Cancel keys that name their instance (docs/design.md §8): the BackendKeyData process id carries the
// issuing instance's slot, so another instance can forward a CancelRequest; the secret stays 4 random
// bytes compared in constant time, so the key stays unguessable.
import { describe, expect, it } from 'vitest';
import { SessionRegistry, slotOfProcessId, type LiveSession } from '../../proxy/session/registry.js';

function fakeSession(registry: SessionRegistry, id: string): LiveSession {
  const cancelKey = registry.newCancelKey();
  return {
    id,
    personId: `p-${id}`,
    cancelKey,
    snapshot: () => ({ id, person: '', personId: '', role: '', database: '', client: { address: '', port: 0 }, started: '', statements: 0, instance: '' }),
    cancel: async () => undefined,
    recheck: () => false,
    end: () => undefined,
  };
}

describe('cancel keys', () => {
  it.each([1, 2, 513, 1023])('instance slot %i: every process id carries the slot, is positive and unique among live sessions', (slot) => {
    const registry = new SessionRegistry({ slot: () => slot });
    const pids = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const s = fakeSession(registry, `s${i}`);
      registry.add(s);
      expect(s.cancelKey.pid).toBeGreaterThan(0);
      expect(s.cancelKey.pid).toBeLessThanOrEqual(0x7fffffff);
      expect(slotOfProcessId(s.cancelKey.pid)).toBe(slot);
      expect(s.cancelKey.secret).toHaveLength(4);
      pids.add(s.cancelKey.pid);
    }
    expect(pids.size).toBe(2000);
  });

  it('a single instance (slot 0) issues ids of slot 0', () => {
    const registry = new SessionRegistry();
    expect(slotOfProcessId(registry.newCancelKey().pid)).toBe(0);
  });

  it('names the other instance that issued a key, and none for its own', () => {
    const registry = new SessionRegistry({ slot: () => 3 });
    const other = new SessionRegistry({ slot: () => 7 });
    expect(registry.issuerElsewhere(other.newCancelKey().pid)).toBe(7);
    expect(registry.issuerElsewhere(registry.newCancelKey().pid)).toBeUndefined();
  });

  it('finds a session only with its exact secret', () => {
    const registry = new SessionRegistry({ slot: () => 5 });
    const s = fakeSession(registry, 'x');
    registry.add(s);
    expect(registry.byCancelKey(s.cancelKey.pid, Buffer.from(s.cancelKey.secret))).toBe(s);
    const wrong = Buffer.from(s.cancelKey.secret);
    wrong[3] = (wrong[3]! + 1) % 256;
    expect(registry.byCancelKey(s.cancelKey.pid, wrong)).toBeUndefined();
    expect(registry.byCancelKey(s.cancelKey.pid, Buffer.concat([s.cancelKey.secret, Buffer.from([0])]))).toBeUndefined();
  });

  it('the secrets are random: 2,000 keys, (almost surely) 2,000 secrets', () => {
    const registry = new SessionRegistry({ slot: () => 9 });
    const secrets = new Set(Array.from({ length: 2000 }, () => registry.newCancelKey().secret.toString('hex')));
    // 2,000 draws from 2^32: a collision has probability about 5e-4; allow one.
    expect(secrets.size).toBeGreaterThanOrEqual(1999);
  });

  it('tells its listener when a session comes and goes', () => {
    let changes = 0;
    const registry = new SessionRegistry({ onChange: () => changes++ });
    const s = fakeSession(registry, 'y');
    registry.add(s);
    registry.remove(s);
    expect(changes).toBe(2);
  });
});
