import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The AWS SDK warns once per process that Node 20 support ends in 2027: noise in every test file's output.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // Unit tests first (fast feedback), then the integration files with their own worker limit.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          sequence: { groupOrder: 1 },
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 60_000,
          hookTimeout: 60_000,
          pool: 'forks',
          // Each integration file starts its own redis-server, s3rver and simulator; two cores → two files at once.
          maxWorkers: 2,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
