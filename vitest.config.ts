import { defineConfig } from 'vitest/config';

// Tests talk to real peers (PostgreSQL, oidc-provider, psql), so timeouts are generous and
// files run in forked processes: a crash in one file cannot take the others down.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    reporters: ['default'],
  },
});
