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
          // A few unit tests draw images with sharp (~100 ms each alone); on a loaded 2-core machine vitest's default
          // 5 s bound was met by scheduling, not by the code. The bound is a hang guard, never a speed assertion.
          testTimeout: 30_000,
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
