/**
 * The chaos driver: a bounded loop that, while jobs remain, SIGKILLs a random ready worker every ~2 s (never ahead of
 * the run's progress, see `maxWorkerKills`) and starts its replacement, crashes redis-server and restarts s3rver when the run reaches the planned shares of its jobs, and fires
 * bursts of 429s. Every choice comes from one seeded PRNG, so a failing run can be replayed with its seed (the timing of
 * a loaded machine still differs between runs; the choices do not).
 *
 * Workers that exit on their own are started again, as a process manager would: a worker started while Redis or S3 is
 * down refuses to start (a startup check, exit code 2). Those exits are counted and described, never hidden.
 */
import type { RandomSource } from '../../src/core/random.js';
import { spawnWorker, WORKER_STARTED_MESSAGE, type WorkerExit, type WorkerProcess } from '../helpers/worker-process.js';
import type { ChaosStack } from './chaos-stack.js';

export interface ChaosPlan {
  /** Worker processes kept running. */
  readonly workers: number;
  /**
   * Worker SIGKILLs at most (the loop is bounded), one per round at most, the n-th once n/max of 90% of the jobs have
   * ended; the run asserts at least `minWorkerKills` happened.
   */
  readonly maxWorkerKills: number;
  /** Time between two worker kills, drawn uniformly from [min, max] ms. */
  readonly killIntervalMs: { readonly min: number; readonly max: number };
  /** Shares of the jobs ended (0–1) at which redis-server is SIGKILLed and restarted, one crash per entry. */
  readonly redisCrashesAt: readonly number[];
  /** Shares of the jobs ended at which s3rver is restarted. */
  readonly s3RestartsAt: readonly number[];
  /** Shares of the jobs ended at which the simulator answers the next `burstSize` API requests 429. */
  readonly throttleBurstsAt: readonly number[];
  readonly burstSize: number;
  /** How long redis-server and s3rver stay down. */
  readonly outageMs: number;
}

/** A worker exit the driver did not cause. */
export interface UnplannedExit {
  readonly name: string;
  readonly exit: WorkerExit;
  /** The last line of its stderr: the startup check that refused, or the crash. */
  readonly lastError: string;
}

export interface ChaosEvents {
  workerKills: number;
  redisCrashes: number;
  s3Restarts: number;
  throttleBursts: number;
  workersStarted: number;
  readonly unplannedExits: UnplannedExit[];
  /** `+12.3s worker-7 SIGKILL` …: what the driver did, in order, for a failure message. */
  readonly timeline: string[];
}

interface Slot {
  worker: WorkerProcess;
  /** Set when the driver killed it, so its exit is not counted as unplanned. */
  killedByDriver: boolean;
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private started = 0;

  constructor(
    private readonly env: Readonly<Record<string, string>>,
    private readonly events: ChaosEvents,
    private readonly log: (line: string) => void,
  ) {}

  private spawn(): Slot {
    this.started += 1;
    this.events.workersStarted += 1;
    return { worker: spawnWorker({ env: this.env, name: `worker-${this.started}` }), killedByDriver: false };
  }

  fill(size: number): void {
    while (this.slots.length < size) this.slots.push(this.spawn());
  }

  /** Starts a replacement for every worker that exited without the driver killing it. */
  reviveExited(): void {
    for (const [index, slot] of this.slots.entries()) {
      if (!slot.worker.hasExited() || slot.killedByDriver) continue;
      void slot.worker.exited.then((exit) =>
        this.events.unplannedExits.push({ name: slot.worker.name, exit, lastError: lastLine(slot.worker.stderr()) }),
      );
      this.log(`${slot.worker.name} exited on its own (${slot.worker.describe().split('\n')[0]}); starting another`);
      this.slots[index] = this.spawn();
    }
  }

  /** SIGKILLs one worker that is taking jobs, chosen with `random`, and starts its replacement; false when none is ready. */
  async killRandomReady(random: RandomSource): Promise<boolean> {
    const ready = this.slots.filter(
      (slot) => !slot.worker.hasExited() && slot.worker.stdout().includes(WORKER_STARTED_MESSAGE),
    );
    const victim = ready[Math.floor(random() * ready.length)];
    if (victim === undefined) return false;
    victim.killedByDriver = true;
    await victim.worker.kill();
    this.log(`${victim.worker.name} SIGKILL`);
    const index = this.slots.indexOf(victim);
    this.slots[index] = this.spawn();
    return true;
  }

  describe(): string {
    return this.slots.map((slot) => slot.worker.describe()).join('\n');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface DriverInputs {
  readonly plan: ChaosPlan;
  readonly stack: ChaosStack;
  readonly pool: WorkerPool;
  readonly events: ChaosEvents;
  readonly random: RandomSource;
  /** The share of the run's jobs that have ended (0–1), as last read from the ledger. */
  readonly progress: () => number;
  /** True once every job has ended: the loop stops. */
  readonly finished: () => boolean;
  readonly log: (line: string) => void;
}

/**
 * Runs until `finished()` or until the planned worker kills are spent and the run is past the last planned outage.
 * Each event happens at most once per plan entry; the loop sleeps one kill interval between rounds.
 */
export async function driveChaos(inputs: DriverInputs): Promise<void> {
  const { plan, stack, pool, events, random, progress, finished, log } = inputs;
  const due = (at: readonly number[], done: number) => {
    const next = at[done];
    return next !== undefined && progress() >= next;
  };
  while (!finished()) {
    const { min, max } = plan.killIntervalMs;
    await sleep(min + random() * (max - min));
    if (finished()) break;
    pool.reviveExited();
    // Kills are spread over the first 90% of the jobs: a slow machine does not spend them all early, a fast one does
    // not finish the run before they happen.
    const killDue =
      events.workerKills < plan.maxWorkerKills && progress() >= (0.9 * events.workerKills) / plan.maxWorkerKills;
    if (killDue && (await pool.killRandomReady(random))) events.workerKills += 1;
    if (due(plan.throttleBurstsAt, events.throttleBursts)) {
      stack.simulator.throttleNext(plan.burstSize, 1);
      events.throttleBursts += 1;
      log(`429 burst of ${plan.burstSize}`);
    }
    if (due(plan.s3RestartsAt, events.s3Restarts)) {
      log('s3rver stopped');
      await stack.restartS3(plan.outageMs);
      events.s3Restarts += 1;
      log('s3rver restarted');
    }
    if (due(plan.redisCrashesAt, events.redisCrashes)) {
      log('redis-server SIGKILL');
      await stack.crashRedis(plan.outageMs);
      events.redisCrashes += 1;
      log('redis-server restarted from its AOF');
    }
  }
}
