/**
 * Memory: the render worker's peak RSS at concurrency 64 with 8 MB outputs. The simulator pads every output to 8 MiB
 * (`outputMinBytes`, written as it is served), and the worker streams each one from the simulator into S3 (s3rver) while
 * 63 others are in flight; an output held whole per job would take 64 × 8 MiB = 512 MiB on its own.
 */
import { formatNumber, machineNote } from './processes.js';
import type { BenchSection } from './table.js';
import { measurePass, startBenchStack } from './worker-runs.js';

const CONCURRENCY = 64;
const OUTPUT_BYTES = 8 * 1024 * 1024;

export async function runMemorySection(options: { quick: boolean }): Promise<BenchSection> {
  const jobs = options.quick ? CONCURRENCY : 2 * CONCURRENCY;
  const bench = await startBenchStack({ outputMinBytes: OUTPUT_BYTES });
  try {
    const pass = await measurePass(bench, { kind: 'depthq', jobs, processes: 1, concurrency: CONCURRENCY });
    const [worker] = pass.workers;
    if (worker === undefined) throw new Error('the memory pass had no worker');
    const mb = (kb: number) => `${formatNumber(kb / 1024)} MB`;
    const moved = (jobs * OUTPUT_BYTES) / 1024 / 1024;
    return {
      title: `Worker memory (concurrency ${CONCURRENCY}, 8 MB outputs)`,
      header: [
        'jobs',
        'output size',
        'worker RSS when ready',
        'worker peak RSS',
        'images/s',
        'MB/s through the worker',
      ],
      rows: [
        [
          formatNumber(jobs),
          '8 MiB',
          mb(worker.readyRssKb),
          mb(worker.maxRssKb),
          formatNumber(jobs / pass.seconds, 1),
          formatNumber(moved / pass.seconds, 0),
        ],
      ],
      notes: [
        `One depthq worker process at concurrency ${CONCURRENCY}; ${formatNumber(jobs)} jobs, so ${CONCURRENCY} are ` +
          'in flight at once for most of the pass. Each output (a 64 px jpeg padded with zero bytes to 8 MiB by the ' +
          'simulator) is downloaded from the simulator and uploaded to s3rver through the worker.',
        'worker RSS when ready: after start-up and a full GC, before any job (modules, connections). Peak RSS: the ' +
          'process’s maxRSS over its whole life. Target: < 250 MB.',
        machineNote(),
      ],
    };
  } finally {
    await bench.stop();
  }
}
