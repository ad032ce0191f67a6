/**
 * What one scrape of /metrics reads from Redis, in a few pipelined round trips whatever the number of jobs: the run
 * index, each run's creation time and model (to pick the newest `runLimit` runs), then for those runs their counters,
 * money and state, the workers' telemetry and heartbeats, and BullMQ's job counts. Everything comes from the run ledger
 * and the telemetry hashes, never from BullMQ's job hashes, so it holds after BullMQ removed finished jobs.
 * See docs/metrics.md.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ledgerKeys, runsIndexKey, telemetryKeys } from '../../core/keys.js';
import type { BudgetState } from '../../core/money.js';
import { heartbeatsOf, type TelemetryTotals, telemetryTotalsOf, type WorkerHeartbeat } from '../../core/telemetry.js';
import { countersRecord, emptyCounters, isCounterName, moneyStateOf } from '../../ledger/ledger-codec.js';
import { RUN_STATES, type RunCounters, type RunState } from '../../ledger/run-ledger.js';
import type { RenderJobData } from '../../queue/render-queue.js';

export interface RunSnapshot {
  readonly run: string;
  readonly model: string;
  readonly createdAt: string;
  readonly state: RunState;
  readonly counters: RunCounters;
  readonly money: BudgetState;
}

export interface MetricsSnapshot {
  /** Runs in the index, all of them. */
  readonly runsKnown: number;
  /** The newest `runLimit` runs whose ledger could be read, newest first. */
  readonly runs: readonly RunSnapshot[];
  /** Runs left out because their ledger did not parse (written by hand or by another version). */
  readonly runsUnreadable: number;
  /** BullMQ's own counts of the render queue, by its job states. */
  readonly queue: Readonly<Record<string, number>>;
  readonly telemetry: TelemetryTotals;
  /** Workers seen within the forget window, with their last heartbeat. */
  readonly workers: readonly WorkerHeartbeat[];
  readonly nowMs: number;
}

export interface SnapshotSources {
  readonly redis: Redis;
  readonly queue: Queue<RenderJobData>;
  /** depthq's key prefix (the ledger's). */
  readonly prefix: string;
}

export interface SnapshotOptions {
  readonly runLimit: number;
  /** Heartbeats older than this are dropped from the hash and from /metrics. */
  readonly forgetWorkersAfterMs: number;
  readonly now: () => number;
}

/** The states BullMQ reports for the render queue. */
export const QUEUE_JOB_STATES = [
  'waiting',
  'active',
  'delayed',
  'prioritized',
  'waiting-children',
  'completed',
  'failed',
] as const;

type Reply = [Error | null, unknown];

function repliesOf(replies: Reply[] | null, what: string): unknown[] {
  if (replies === null) throw new Error(`the ${what} pipeline was not executed`);
  return replies.map(([error, value]) => {
    if (error !== null) throw error;
    return value;
  });
}

function stringsOf(value: unknown): Array<string | null> {
  return Array.isArray(value) ? value.map((part) => (typeof part === 'string' ? part : null)) : [];
}

/** An HGETALL reply (a record, or the flat array some ioredis versions give in a pipeline) as a record of strings. */
function hashOf(value: unknown): Record<string, string> {
  return countersRecord(value);
}

/** The newest `limit` runs by their ledger's `createdAt` (ISO 8601 sorts as text); ties by id. */
async function newestRuns(
  redis: Redis,
  prefix: string,
  limit: number,
): Promise<{ known: number; runs: Array<{ run: string; createdAt: string; model: string }> }> {
  const ids = await redis.smembers(runsIndexKey(prefix));
  if (ids.length === 0) return { known: 0, runs: [] };
  const batch = redis.pipeline();
  for (const run of ids) batch.hmget(ledgerKeys(prefix, run).meta, 'createdAt', 'model');
  const metas = repliesOf(await batch.exec(), 'run meta');
  const runs = ids.flatMap((run, index) => {
    const [createdAt, model] = stringsOf(metas[index]);
    // A run in the index whose meta is gone (deleted by hand) has nothing to show.
    return createdAt && model ? [{ run, createdAt, model }] : [];
  });
  runs.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || a.run.localeCompare(b.run));
  return { known: ids.length, runs: runs.slice(0, limit) };
}

export async function readMetricsSnapshot(
  sources: SnapshotSources,
  options: SnapshotOptions,
): Promise<MetricsSnapshot> {
  const { redis, prefix } = sources;
  const nowMs = options.now();
  const { known, runs } = await newestRuns(redis, prefix, options.runLimit);
  const telemetry = telemetryKeys(prefix);
  const batch = redis.pipeline();
  for (const { run } of runs) {
    const keys = ledgerKeys(prefix, run);
    batch.hgetall(keys.counters);
    batch.hmget(keys.money, 'budget', 'reserved', 'spent', 'possiblyBilled');
    batch.get(keys.state);
  }
  batch.hgetall(telemetry.counters);
  batch.hgetall(telemetry.workers);
  const [replies, queue] = await Promise.all([
    batch.exec().then((result) => repliesOf(result, 'metrics')),
    sources.queue.getJobCounts(...QUEUE_JOB_STATES),
  ]);
  let runsUnreadable = 0;
  const runSnapshots = runs.flatMap(({ run, createdAt, model }, index): RunSnapshot[] => {
    const [counterReply, moneyReply, stateReply] = replies.slice(index * 3, index * 3 + 3);
    try {
      const counters = emptyCounters();
      for (const [name, value] of Object.entries(hashOf(counterReply))) {
        if (!isCounterName(name)) continue;
        const count = Number(value);
        if (!Number.isSafeInteger(count)) throw new RangeError(`counter ${name} is ${JSON.stringify(value)}`);
        counters[name] = count;
      }
      const state = RUN_STATES.find((known) => known === stateReply) ?? 'active';
      return [{ run, model, createdAt, state, counters, money: moneyStateOf(stringsOf(moneyReply), 0) }];
    } catch {
      runsUnreadable += 1;
      return [];
    }
  });
  const heartbeats = heartbeatsOf(hashOf(replies[runs.length * 3 + 1]), nowMs, options.forgetWorkersAfterMs);
  if (heartbeats.forgotten.length > 0) await redis.hdel(telemetry.workers, ...heartbeats.forgotten);
  return {
    runsKnown: known,
    runs: runSnapshots,
    runsUnreadable,
    queue,
    telemetry: telemetryTotalsOf(hashOf(replies[runs.length * 3])),
    workers: heartbeats.recent,
    nowMs,
  };
}
