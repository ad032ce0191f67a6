/**
 * The short chaos run inside `npm test` (the full one is `npm run test:chaos`, test/chaos/chaos.test.ts): 120 jobs on
 * 3 worker processes while workers are SIGKILLed every ~2 s (≥ 6), Redis is crashed once and S3 restarted once, under
 * 10% failed predictions, 5% 5xx answers, 2% connection resets and 429 bursts. What must hold afterwards: every job
 * succeeded once, billed images = succeeded jobs = distinct outputs, no input billed twice, and the ledger's spend is
 * billed images × price to the micro-dollar. The figures table is printed to stdout.
 */
import { describe, it } from 'vitest';
import { chaosSeed, runChaosScenario } from '../chaos/chaos-harness.js';
import { expectChaosHeld, shortScenario } from '../chaos/chaos-scenarios.js';

describe('chaos: the short run', () => {
  it(
    '120 jobs, 3 workers, ≥ 6 worker kills, a Redis crash, an S3 restart, faults and 429 bursts: paid once each',
    async () => {
      const outcome = await runChaosScenario(shortScenario, chaosSeed());
      expectChaosHeld(shortScenario, outcome);
    },
    22 * 60_000,
  );
});
