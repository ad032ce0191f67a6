/**
 * The full chaos run (`npm run test:chaos`; not part of `npm test`): 500 jobs on 4 worker processes while workers are
 * SIGKILLed every ~2 s, Redis is crashed twice and S3 restarted once, under injected prediction failures, 5xx answers,
 * connection resets and 429 bursts. Every image is paid once, stored once, and the ledger says what was billed.
 * The figures are printed; RELIABILITY.md quotes them.
 */
import { describe, it } from 'vitest';
import { chaosSeed, runChaosScenario } from './chaos-harness.js';
import { expectChaosHeld, fullScenario } from './chaos-scenarios.js';

describe('chaos: the full run', () => {
  it(
    '500 jobs, 4 workers, ≥ 20 worker kills, 2 Redis crashes, 1 S3 restart, faults and 429 bursts: paid once each',
    async () => {
      const outcome = await runChaosScenario(fullScenario, chaosSeed());
      expectChaosHeld(fullScenario, outcome);
    },
    70 * 60_000,
  );
});
