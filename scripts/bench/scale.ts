/**
 * Scale: 1, 2 and 4 depthq worker processes on one Redis at latency 0 — images/s in all and per process, the workers'
 * CPU per image and Redis's CPU — and, on paper, how many images/s (and so workers) one Redis can serve, from the Redis
 * CPU time and the commands each image costs.
 */
import { formatNumber, machineNote } from './processes.js';
import type { BenchSection } from './table.js';
import { measurePass, type PassFigures, startBenchStack, totalOf } from './worker-runs.js';

const CONCURRENCY = 16;
const PROCESS_COUNTS = [1, 2, 4] as const;

export async function runScaleSection(options: { quick: boolean }): Promise<BenchSection> {
  const jobs = options.quick ? 300 : 1_000;
  const bench = await startBenchStack();
  const passes: Array<{ readonly processes: number; readonly pass: PassFigures }> = [];
  try {
    await measurePass(bench, { kind: 'depthq', jobs: 50, processes: 1, concurrency: CONCURRENCY });
    for (const processes of PROCESS_COUNTS) {
      passes.push({
        processes,
        pass: await measurePass(bench, { kind: 'depthq', jobs, processes, concurrency: CONCURRENCY }),
      });
    }
  } finally {
    await bench.stop();
  }
  const rows = passes.map(({ processes, pass }) => {
    const rate = pass.jobs / pass.seconds;
    return [
      String(processes),
      formatNumber(pass.jobs),
      formatNumber(rate, 1),
      formatNumber(rate / processes, 1),
      formatNumber(totalOf(pass, (worker) => worker.cpuMs) / pass.jobs, 2),
      `${formatNumber((pass.redisCpuMs / (pass.seconds * 1000)) * 100, 1)} %`,
      formatNumber((pass.redisCpuMs * 1000) / pass.jobs, 0),
      formatNumber(pass.commands.total / pass.jobs, 1),
    ];
  });
  const single = passes[0]?.pass;
  const notes: string[] = [
    `Each process a depthq worker at concurrency ${CONCURRENCY}, ${formatNumber(jobs)} jobs per pass, the simulator ` +
      'at latency 0 with 64 px outputs; Redis, s3rver and the simulator share the machine with the workers.',
    'Redis CPU: redis-server’s used_cpu_user + used_cpu_sys over the pass, as a share of one core (Redis runs ' +
      'commands on one thread) and per image.',
  ];
  if (single !== undefined) {
    const redisUsPerImage = (single.redisCpuMs * 1000) / single.jobs;
    const commandsPerImage = single.commands.total / single.jobs;
    const perWorker = single.jobs / single.seconds;
    const imagesPerSecondByCpu = 1_000_000 / redisUsPerImage;
    // A commodity Redis runs on the order of 100,000 simple commands a second on one core (redis-benchmark).
    const imagesPerSecondByCommands = 100_000 / commandsPerImage;
    notes.push(
      `On paper, from the 1-process pass: each image costs Redis ${formatNumber(redisUsPerImage, 0)} µs of CPU and ` +
        `${formatNumber(commandsPerImage, 1)} commands (Lua scripts’ inner commands included). One Redis core, ` +
        `saturated, would serve about ${formatNumber(imagesPerSecondByCpu)} images/s by the CPU figure, or ` +
        `${formatNumber(imagesPerSecondByCommands)} images/s at 100,000 commands/s; at the ` +
        `${formatNumber(perWorker, 1)} images/s one worker process reached here, that is about ` +
        `${formatNumber(Math.min(imagesPerSecondByCpu, imagesPerSecondByCommands) / perWorker)} worker processes. ` +
        'At Replicate’s default limit of 600 creates/min (10 images/s) Redis is not what limits a run.',
    );
  }
  notes.push(machineNote());
  return {
    title: 'Scale (worker processes on one Redis, latency 0)',
    header: [
      'worker processes',
      'jobs',
      'images/s',
      'images/s per process',
      'worker CPU ms/image',
      'Redis CPU (of one core)',
      'Redis CPU µs/image',
      'Redis commands/image',
    ],
    rows,
    notes,
  };
}
