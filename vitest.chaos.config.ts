/**
 * `npm run test:chaos`: the full chaos run (test/chaos/), minutes long, kept out of `npm test` and CI. The short run
 * is test/integration/chaos-short.test.ts, which `npm test` includes.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    include: ['test/chaos/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 70 * 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
