/**
 * The provider scenarios of `npm run bench`: N images at C in flight against the simulator with a fixed model latency L,
 * rendered by the plain script (scripts/plain-script.ts) and by depthq, interleaved in the same run on a fresh local
 * stack each (scripts/bench/provider-sides.ts). The ceiling is the provider: makespan ≥ max(N·L/C, N/R) for R creates
 * a second. BENCHMARKS.md says what each figure means.
 */
import {
  boundMsOf,
  measureSide,
  type ProviderScenario,
  REPLICATE_LIMITS,
  type Side,
  type SideMeasurement,
} from './provider-sides.js';
import type { BenchSection } from './table.js';

export const fullScenarios: readonly ProviderScenario[] = [
  { count: 400, concurrency: 40, latencyMs: 3_000, limits: 'none' },
  { count: 300, concurrency: 100, latencyMs: 19_000, limits: 'none' },
  { count: 300, concurrency: 100, latencyMs: 19_000, limits: 'replicate' },
];

/**
 * A check in about two minutes on a quiet machine: the same concurrencies with fewer images, and L 9.5 s where the full
 * run has 19 s (at Replicate's limits that makes the rate the bound: 100 creates at 600 a minute take 10 s).
 */
export const quickScenarios: readonly ProviderScenario[] = [
  { count: 120, concurrency: 40, latencyMs: 3_000, limits: 'none' },
  { count: 100, concurrency: 100, latencyMs: 9_500, limits: 'none' },
  { count: 100, concurrency: 100, latencyMs: 9_500, limits: 'replicate' },
];

export function describeScenario(scenario: ProviderScenario): string {
  const limits =
    scenario.limits === 'none'
      ? 'no limits'
      : `Replicate's limits (${REPLICATE_LIMITS.createsPerMinute} creates/min, ${REPLICATE_LIMITS.requestsPerMinute} other/min, bursts of a tenth)`;
  return `N ${scenario.count}, C ${scenario.concurrency}, L ${scenario.latencyMs / 1000} s, ${limits}`;
}

/** The depthq side's label: its worker processes when there are several. */
function depthqLabel(scenario: ProviderScenario): string {
  const workers = scenario.workers ?? 1;
  return workers === 1 ? 'depthq' : `depthq, ${workers} workers × ${Math.ceil(scenario.concurrency / workers)}`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const ratio = (value: number) => value.toFixed(2);
const perImage = (ms: number | undefined, count: number) => (ms === undefined ? 'n/a' : (ms / count).toFixed(1));

function sideCells(measured: SideMeasurement): string[] {
  const { scenario } = measured;
  const bound = boundMsOf(scenario);
  const rate = measured.firstWaveCreatesPerMinute;
  return [
    `${measured.delivered} of ${scenario.count}`,
    seconds(measured.makespanMs),
    ratio(bound / measured.makespanMs),
    (measured.requests / scenario.count).toFixed(2),
    String(measured.throttled),
    rate === undefined ? 'n/a' : rate === Number.POSITIVE_INFINITY ? 'all at once' : String(Math.round(rate)),
    perImage(measured.clientCpuMs, scenario.count),
    perImage(measured.redisCpuMs, scenario.count),
    perImage(measured.stackCpuMs, scenario.count),
  ];
}

export interface ProviderScenarioResult {
  readonly scenario: ProviderScenario;
  readonly plain: SideMeasurement;
  readonly depthq: SideMeasurement;
}

/** Runs every scenario, both sides, alternating which side goes first so a drift in the machine's load hits both. */
export async function measureProviderScenarios(
  scenarios: readonly ProviderScenario[],
  log: (line: string) => void = () => undefined,
): Promise<ProviderScenarioResult[]> {
  const results: ProviderScenarioResult[] = [];
  for (const [index, scenario] of scenarios.entries()) {
    const order: Side[] = index % 2 === 0 ? ['plain script', 'depthq'] : ['depthq', 'plain script'];
    const measured = new Map<Side, SideMeasurement>();
    for (const side of order) {
      log(`${describeScenario(scenario)}: ${side} …`);
      const result = await measureSide(side, scenario);
      log(
        `  ${side}: ${seconds(result.makespanMs)}, ${result.delivered}/${scenario.count} delivered, ${result.requests} requests, ${result.throttled} × 429, load ${result.loadBefore}`,
      );
      measured.set(side, result);
    }
    const plain = measured.get('plain script');
    const depthq = measured.get('depthq');
    if (plain === undefined || depthq === undefined) throw new Error('a side was not measured');
    results.push({ scenario, plain, depthq });
  }
  return results;
}

export function providerSection(results: readonly ProviderScenarioResult[]): BenchSection {
  const rows = results.flatMap(({ scenario, plain, depthq }) => {
    const label = describeScenario(scenario);
    const bound = `${seconds(boundMsOf(scenario))}`;
    const vsPlain = ratio(depthq.makespanMs / plain.makespanMs);
    return [
      [label, bound, 'plain script', ...sideCells(plain), '', String(plain.loadBefore)],
      [label, bound, depthqLabel(scenario), ...sideCells(depthq), vsPlain, String(depthq.loadBefore)],
    ];
  });
  const notes = results.flatMap(({ scenario, plain, depthq }) =>
    [plain, depthq].flatMap((measured) =>
      measured.note === undefined ? [] : [`${describeScenario(scenario)}, ${measured.side}: ${measured.note}`],
    ),
  );
  const duplicates = results.flatMap(({ plain, depthq }) => [plain, depthq]).filter((m) => m.inputsBilledMoreThanOnce);
  return {
    title: 'Provider scenarios: depthq and the plain script against the bound',
    header: [
      'scenario',
      'bound',
      'side',
      'delivered',
      'makespan',
      'bound ÷ makespan',
      'API requests / image',
      '429s',
      'first-wave creates/min',
      'CPU ms / image: client',
      'redis',
      'simulator + s3rver',
      'depthq ÷ plain',
      'load (1 min)',
    ],
    rows,
    notes: [
      'bound = max(N·L/C, N/R): N images, model latency L, C in flight, R creates a second (Replicate: 600/min).',
      'makespan: the plain script from its first create to its last PutObject; depthq from the enqueue to the last job recorded (one worker process at concurrency C unless the side says otherwise; its CPU is the sum of its workers).',
      'API requests / image, 429s: the simulator counters (every /v1 request, retries and 429s included) ÷ N.',
      'first-wave creates/min: creates from the first to the min(N, C)-th, per minute (every slot wants a create then).',
      'CPU ms / image: CPU time (user + system, all threads) during the makespan ÷ N, of the client (the plain script, or the depthq worker), of redis-server, and of the bench process that hosts the simulator and s3rver (for the plain script it includes its start-up).',
      `Images billed more than once: ${duplicates.length === 0 ? 'none, on either side' : duplicates.map((m) => `${m.side} ${m.inputsBilledMoreThanOnce}`).join(', ')}.`,
      ...notes,
    ],
  };
}

/** The provider section of `npm run bench`. */
export async function runProviderSection(options: {
  quick: boolean;
  /** depthq's worker processes in every scenario. @defaultValue 1 */
  workers?: number;
  log?: (line: string) => void;
}): Promise<BenchSection> {
  const scenarios = (options.quick ? quickScenarios : fullScenarios).map((scenario) => ({
    ...scenario,
    workers: options.workers ?? 1,
  }));
  const results = await measureProviderScenarios(scenarios, options.log);
  return providerSection(results);
}
