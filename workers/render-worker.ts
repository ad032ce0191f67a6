/**
 * The render worker's entry for a process manager: `node --import tsx workers/render-worker.ts` runs one worker until
 * SIGTERM/SIGINT, exactly as `depthq worker` does (the same environment, the same graceful close). A bad environment or
 * an unreachable dependency ends with its message alone and exit code 2; anything else is a bug and keeps its stack.
 *
 * The worker itself is src/worker/ (start.ts, startup-checks.ts, settings.ts): import it from there, not from here.
 */
import { loadConfig } from '../src/config/index.js';
import { ConfigError, coerceError } from '../src/core/errors.js';
import { runRenderWorkerProcess } from '../src/worker/start.js';

try {
  await runRenderWorkerProcess(loadConfig());
} catch (thrown) {
  const error = coerceError(thrown);
  if (error instanceof ConfigError) {
    process.stderr.write(`depthq worker: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`depthq worker: unexpected failure: ${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  }
}
