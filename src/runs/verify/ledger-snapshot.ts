/**
 * Reads a run's ledger as verify compares it: every result row, the counters, the money, the open reservations and the
 * settlements — raw, as Redis holds them, so the comparison (`ledger-checks.ts`) is pure and parses each value itself.
 *
 * The counters and money must be compared with rows read at the same instant, or a run that is still going would show
 * mismatches that are only the workers moving on. A run of up to `atomicRowLimit` rows is read in one MULTI (a Redis
 * transaction: nothing runs in between). A larger one is scanned (HSCAN, so Redis is never blocked long), between two
 * reads of counters and money; when those are equal before and after, nothing was recorded meanwhile (every row write
 * moves a counter or money in the same script). Otherwise it is read again, and after a few tries reported `changing`.
 */
import type { Redis } from 'ioredis';
import { ledgerKeys } from '../../core/keys.js';
import { scanHash } from '../../ledger/hash-scan.js';
import { RunNotFoundError } from '../../ledger/run-ledger.js';

export interface RawLedger {
  /** job id → row JSON. */
  readonly rows: ReadonlyMap<string, string>;
  readonly counters: Readonly<Record<string, string>>;
  readonly money: {
    readonly reserved: string | null;
    readonly spent: string | null;
    readonly possiblyBilled: string | null;
  };
  /** job id → micro-dollars held. */
  readonly reservations: Readonly<Record<string, string>>;
  /** job id → settlement JSON. */
  readonly settlements: Readonly<Record<string, string>>;
  readonly read: 'atomic' | 'stable' | 'changing';
}

const SCAN_BATCH = 1000;
const STABLE_READ_TRIES = 3;

type Replies = Array<[Error | null, unknown]> | null;

function replyAt(replies: Replies, index: number): unknown {
  const entry = replies?.[index];
  if (entry === undefined) throw new Error('the ledger transaction was aborted');
  if (entry[0] !== null) throw entry[0];
  return entry[1];
}

function record(value: unknown): Record<string, string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value).filter((entry): entry is [string, string] => typeof entry[1] === 'string'),
  );
}

function nullableString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

interface Aggregates {
  readonly exists: boolean;
  readonly counters: Record<string, string>;
  readonly money: RawLedger['money'];
  readonly reservations: Record<string, string>;
  readonly settlements: Record<string, string>;
  readonly rowCount: number;
  readonly rows?: Record<string, string>;
}

async function readAggregates(redis: Redis, prefix: string, run: string, withRows: boolean): Promise<Aggregates> {
  const keys = ledgerKeys(prefix, run);
  const multi = redis
    .multi()
    .exists(keys.meta)
    .hgetall(keys.counters)
    .hmget(keys.money, 'reserved', 'spent', 'possiblyBilled')
    .hgetall(keys.reservations)
    .hgetall(keys.settlements)
    .hlen(keys.results);
  if (withRows) multi.hgetall(keys.results);
  const replies = await multi.exec();
  const money = replyAt(replies, 2);
  const [reserved, spent, possiblyBilled] = Array.isArray(money) ? money : [];
  return {
    exists: replyAt(replies, 0) === 1,
    counters: record(replyAt(replies, 1)),
    money: {
      reserved: nullableString(reserved),
      spent: nullableString(spent),
      possiblyBilled: nullableString(possiblyBilled),
    },
    reservations: record(replyAt(replies, 3)),
    settlements: record(replyAt(replies, 4)),
    rowCount: Number(replyAt(replies, 5)),
    ...(withRows ? { rows: record(replyAt(replies, 6)) } : {}),
  };
}

async function scanRows(redis: Redis, key: string): Promise<Map<string, string>> {
  const rows = new Map<string, string>();
  for await (const [jobId, json] of scanHash(redis, key, SCAN_BATCH)) rows.set(jobId, json);
  return rows;
}

function sameAggregates(a: Aggregates, b: Aggregates): boolean {
  const text = (value: Aggregates) =>
    JSON.stringify([
      Object.entries(value.counters).sort(),
      value.money,
      Object.keys(value.reservations).length,
      Object.keys(value.settlements).length,
      value.rowCount,
    ]);
  return text(a) === text(b);
}

function rawOf(aggregates: Aggregates, rows: ReadonlyMap<string, string>, read: RawLedger['read']): RawLedger {
  return {
    rows,
    counters: aggregates.counters,
    money: aggregates.money,
    reservations: aggregates.reservations,
    settlements: aggregates.settlements,
    read,
  };
}

/** The run's ledger, read consistently when it can be (see the file's comment). RunNotFoundError if there is none. */
export async function readRawLedger(
  redis: Redis,
  prefix: string,
  run: string,
  atomicRowLimit: number,
): Promise<RawLedger> {
  const keys = ledgerKeys(prefix, run);
  const rowCount = await redis.hlen(keys.results);
  if (rowCount <= atomicRowLimit) {
    const aggregates = await readAggregates(redis, prefix, run, true);
    if (!aggregates.exists) throw new RunNotFoundError(run);
    // Rows added between the HLEN and the transaction only make this one larger than the limit: still consistent.
    return rawOf(aggregates, new Map(Object.entries(aggregates.rows ?? {})), 'atomic');
  }
  let last: RawLedger | undefined;
  for (let attempt = 0; attempt < STABLE_READ_TRIES; attempt += 1) {
    const before = await readAggregates(redis, prefix, run, false);
    if (!before.exists) throw new RunNotFoundError(run);
    const rows = await scanRows(redis, keys.results);
    const after = await readAggregates(redis, prefix, run, false);
    if (sameAggregates(before, after)) return rawOf(after, rows, 'stable');
    last = rawOf(after, rows, 'changing');
  }
  if (last === undefined) throw new Error('unreachable: no ledger read was made');
  return last;
}
