/**
 * vitest globalSetup for the integration project: makes sure redis-server is installed once, before any test file
 * runs, so two files starting their stacks at the same moment never race two apt-get installs.
 */
import { ensureRedisServer } from '../../src/local/redis.js';

export default async function setup(): Promise<void> {
  await ensureRedisServer();
}
