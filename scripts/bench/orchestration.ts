/**
 * Orchestration cost: what depthq's worker spends per image beyond what a queue alone costs. The same jobs (the same
 * RenderJob payloads) run through
 *   - a bare BullMQ Worker whose processor does nothing (the floor any BullMQ-based system pays), and
 *   - depthq's render worker: reserve, fenced checkpoints, create and await on the simulator, the output streamed into
 *     S3, the sidecar, the result row and the settlement,
 * each in its own process at the same concurrency, on the same Redis, interleaved in the same run (bare, depthq,
 * bare) so that the load other programs put on the machine falls on both alike. The simulator answers at once and
 * its outputs are small (64 px), so what is left is orchestration.
 */
import { formatNumber, machineNote } from './processes.js';
import type { BenchSection } from './table.js';
import { measurePass, type PassFigures, startBenchStack, totalOf } from './worker-runs.js';

const CONCURRENCY = 16;

export interface OrchestrationFigures {
  readonly bare: readonly PassFigures[];
  readonly depthq: readonly PassFigures[];
}

const perImage = (pass: PassFigures, value: number) => value / pass.jobs;
const imagesPerSecond = (pass: PassFigures) => pass.jobs / pass.seconds;
const workerCpuPerImage = (pass: PassFigures) =>
  perImage(
    pass,
    totalOf(pass, (worker) => worker.cpuMs),
  );
const mean = (values: readonly number[]): number =>
  values.length === 0 ? 0 : values.reduce((sum, value) => sum + value, 0) / values.length;

function passRow(name: string, when: string, pass: PassFigures): string[] {
  return [
    when === '' ? name : `${name} (${when})`,
    formatNumber(pass.jobs),
    formatNumber(imagesPerSecond(pass), 0),
    formatNumber(workerCpuPerImage(pass), 2),
    formatNumber(perImage(pass, pass.commands.total), 1),
    formatNumber(perImage(pass, pass.commands.scripts), 1),
    formatNumber(perImage(pass, pass.redisCpuMs) * 1000, 0),
  ];
}

/** The commands depthq's worker runs most, per image: where its Redis round trips go. */
function commandMix(pass: PassFigures): string {
  return [...pass.commands.byCommand]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([command, calls]) => `${command} ${formatNumber(calls / pass.jobs, 1)}`)
    .join(', ');
}

export async function measureOrchestration(options: { quick: boolean }): Promise<OrchestrationFigures> {
  const jobs = options.quick ? 500 : 5_000;
  const bench = await startBenchStack();
  const bare: PassFigures[] = [];
  const depthq: PassFigures[] = [];
  const pass = (kind: 'bare' | 'depthq', count: number) =>
    measurePass(bench, { kind, jobs: count, processes: 1, concurrency: CONCURRENCY });
  try {
    // A short warm-up of each, unmeasured: the simulator's renderer, s3rver's first writes, the page cache.
    await pass('bare', 50);
    await pass('depthq', 50);
    // depthq's pass is bracketed by two bare ones: a change in the machine's load during it shows as two different
    // bare figures.
    bare.push(await pass('bare', jobs));
    depthq.push(await pass('depthq', jobs));
    bare.push(await pass('bare', jobs));
  } finally {
    await bench.stop();
  }
  return { bare, depthq };
}

export function orchestrationSection(figures: OrchestrationFigures): BenchSection {
  const rows: string[][] = [];
  figures.bare.forEach((pass, index) => {
    rows.push(passRow('bare BullMQ, no-op processor', index === 0 ? 'before' : 'after', pass));
    const depthq = figures.depthq[index];
    if (depthq !== undefined) rows.push(passRow('depthq render worker', '', depthq));
  });
  const bareRate = mean(figures.bare.map(imagesPerSecond));
  const depthqRate = mean(figures.depthq.map(imagesPerSecond));
  const bareCpu = mean(figures.bare.map(workerCpuPerImage));
  const depthqCpu = mean(figures.depthq.map(workerCpuPerImage));
  const last = figures.depthq.at(-1);
  rows.push([
    'depthq ÷ bare (bare: the mean of its passes)',
    '',
    `${formatNumber(depthqRate / bareRate, 2)}×`,
    `${formatNumber(depthqCpu / bareCpu, 1)}×`,
    '',
    '',
    '',
  ]);
  return {
    title: 'Orchestration cost (latency 0, small outputs)',
    header: [
      'pass',
      'jobs',
      'images/s',
      'worker CPU ms/image',
      'Redis commands/image',
      'Lua scripts/image',
      'Redis CPU µs/image',
    ],
    rows,
    notes: [
      `One worker process at concurrency ${CONCURRENCY} on each side; the same jobs (RenderJob payloads, ~700 B) on the ` +
        'same redis-server, passes interleaved. The simulator answers at once (latency 0) with 64 px outputs.',
      'worker CPU ms/image: the worker process’s own CPU time (user + system, `process.cpuUsage`) from the moment it ' +
        'was ready until the last job completed, divided by the jobs. depthq’s includes its HTTP calls to the ' +
        'simulator, the output download and S3 upload, the sidecar, and its Redis client; Redis, s3rver and the ' +
        'simulator run in the parent process and are not in it.',
      'Redis commands/image: every command Redis ran (`INFO commandstats`, reset before each pass), the commands ' +
        'inside Lua scripts included, divided by the jobs; Lua scripts/image counts the EVALSHA calls alone. ' +
        'Redis CPU µs/image: redis-server’s used_cpu_user + used_cpu_sys over the pass, divided by the jobs.',
      `Targets: ≤ 5 ms worker CPU per image (measured: ${formatNumber(depthqCpu, 2)} ms); ≥ 0.3× the bare ` +
        `no-op throughput (measured: ${formatNumber(depthqRate / bareRate, 2)}×).`,
      ...(last === undefined ? [] : [`depthq’s most frequent commands per image: ${commandMix(last)}.`]),
      machineNote(),
    ],
  };
}

export async function runOrchestrationSection(options: { quick: boolean }): Promise<BenchSection> {
  return orchestrationSection(await measureOrchestration(options));
}
