/**
 * The run ledger: what a run is, what it may spend and has spent, and one result row per job — kept in Redis beside
 * BullMQ but outside its retention, so status, reports and retries still work after completed jobs are removed.
 *
 * Money is integer micro-dollars and moves only inside Lua scripts (see ledger-scripts.ts): a reservation is checked
 * against the budget and recorded in one atomic step, and every reservation and settlement is idempotent per job, so a
 * job that resumes after a crash can repeat any step without counting anything twice.
 *
 * Per run (keys from `ledgerKeys`):
 * - meta: one field per setting (`createdAt`, `model`, `budgetMicros`, `manifestName` …), strings as they are and
 *   `defaults` as canonical JSON, so `redis-cli HGETALL` is readable;
 * - money: `budget` (absent = unlimited), `reserved`, `spent`, `possiblyBilled`;
 * - reservations / settlements: job id → amount held / the job's settlement JSON;
 * - results: job id → result row JSON; counters: status → count, plus `total`.
 */
import type { Redis } from 'ioredis';
import { type LedgerKeys, ledgerKeys, runsIndexKey } from '../core/keys.js';
import type { BudgetState, Micros } from '../core/money.js';
import { scanHash } from './hash-scan.js';
import {
  checkFence,
  checkJobId,
  countersRecord,
  decodeMeta,
  emptyCounters,
  encodeMeta,
  encodeMicros,
  execPair,
  isCounterName,
  metaDifferences,
  moneyStateOf,
  pairsToRecord,
  parseMicros,
  parseRow,
  parseSettlement,
  refuseLostLock,
  replyParts,
} from './ledger-codec.js';
import {
  LedgerDataError,
  type LedgerFence,
  type LedgerResult,
  type NewRun,
  type PauseCause,
  type PauseOutcome,
  type QueuedRow,
  RESULT_STATUSES,
  type ReleaseOutcome,
  type ReserveOutcome,
  type ResultRow,
  type ResultStatus,
  type ResultsOptions,
  RUN_STATES,
  type RunCounters,
  type RunLedgerOptions,
  type RunMeta,
  RunMetaConflictError,
  RunNotFoundError,
  type RunState,
  resultRowSchema,
  runMetaSchema,
  type Settlement,
  type SettleOutcome,
} from './ledger-model.js';
import { type LedgerCommands, withLedgerCommands } from './ledger-scripts.js';

export * from './ledger-model.js';

/**
 * The ledger as one render job uses it (`fencedFor`): its four writes are fenced by the job's lock and throw
 * `LockLostError` once another worker may own the job; reading the run's state and pausing the run are not job writes.
 */
export type JobLedger = Pick<RunLedger, 'runState' | 'pauseFor' | 'reserve' | 'settle' | 'release' | 'recordResult'>;

/** Rows per registerJobs script call: large enough to amortise round trips, small enough not to block Redis long. */
const REGISTER_CHUNK_ROWS = 1000;

export class RunLedger {
  readonly #redis: Redis & LedgerCommands;
  /** depthq's key prefix this ledger's keys live under. */
  readonly prefix: string;
  readonly #now: () => Date;

  /**
   * @param redis a connection the caller owns (and quits); the ledger's scripts are defined on it
   * @param prefix depthq's key prefix, e.g. `DEFAULT_KEY_PREFIX`
   */
  constructor(redis: Redis, prefix: string, options: RunLedgerOptions = {}) {
    this.#redis = withLedgerCommands(redis);
    this.prefix = prefix;
    this.#now = options.now ?? (() => new Date());
    // Validates the prefix now rather than on first use.
    runsIndexKey(prefix);
  }

  #keys(run: string): LedgerKeys {
    return ledgerKeys(this.prefix, run);
  }

  /**
   * The ledger for one processing of one render job: `reserve`, `settle`, `release` and `recordResult` are written only
   * while `fence.lockKey` still holds `fence.token`, checked inside the same Lua script as the write, and throw
   * `LockLostError` (writing nothing) otherwise. A worker that lost its lock (an event-loop stall past lockDuration, a
   * network flap) keeps running until it notices; fenced, it can no longer release the reservation of the job's next
   * life, settle it a second way, or write `failed` over the `succeeded` row the next life wrote.
   */
  fencedFor(fence: LedgerFence): JobLedger {
    const held = checkFence(fence);
    return {
      runState: (run) => this.runState(run),
      pauseFor: (run, cause) => this.pauseFor(run, cause),
      reserve: (run, jobId, amount) => this.#reserve(run, jobId, amount, held),
      settle: (run, jobId, amounts) => this.#settle(run, jobId, amounts, held),
      release: (run, jobId) => this.#release(run, jobId, held),
      recordResult: (run, jobId, row) => this.#recordResult(run, jobId, row, held),
    };
  }

  // --- runs ---------------------------------------------------------------------------------------------------------

  /**
   * Creates the run. Creating it again with the same settings changes nothing (ingest may be repeated); with different
   * settings it throws a RunMetaConflictError naming each difference. The stored `createdAt` is kept either way.
   */
  async createRun(run: string, meta: NewRun): Promise<{ readonly created: boolean; readonly meta: RunMeta }> {
    const keys = this.#keys(run);
    const full = runMetaSchema.parse({ ...meta, createdAt: this.#now().toISOString() });
    const encoded = encodeMeta(full);
    const fields = Object.entries({ v: '1', ...encoded }).flat();
    const budget = full.budgetMicros === null ? '' : encodeMicros(full.budgetMicros, 'budget');
    const reply = await this.#redis.depthqLedgerCreateRun(
      keys.meta,
      keys.money,
      runsIndexKey(this.prefix),
      run,
      budget,
      ...fields,
    );
    const parts = replyParts(reply, 'createRun');
    if (parts[0] === 'created') return { created: true, meta: full };
    const stored = pairsToRecord(parts.slice(1));
    const differences = metaDifferences(stored, full);
    if (differences.length > 0) throw new RunMetaConflictError(run, differences);
    return { created: false, meta: decodeMeta(run, stored) };
  }

  async getRun(run: string): Promise<RunMeta | undefined> {
    const fields = await this.#redis.hgetall(this.#keys(run).meta);
    if (Object.keys(fields).length === 0) return undefined;
    return decodeMeta(run, fields);
  }

  /** Every run id, sorted. */
  async listRuns(): Promise<string[]> {
    const runs = await this.#redis.smembers(runsIndexKey(this.prefix));
    return runs.sort();
  }

  // --- money --------------------------------------------------------------------------------------------------------

  async money(run: string): Promise<BudgetState> {
    const keys = this.#keys(run);
    const [exists, state] = await execPair(
      run,
      this.#redis.multi().exists(keys.meta).hmget(keys.money, 'budget', 'reserved', 'spent', 'possiblyBilled'),
    );
    if (exists !== 1) throw new RunNotFoundError(run);
    return moneyStateOf(replyParts(state, 'HMGET money'), 0);
  }

  /**
   * Reserves `amount` for the job unless that would take committed money (reserved + spent + possiblyBilled) past the
   * budget — the same rule as `canReserve` in core/money.ts. Idempotent per job: a job that holds a reservation gets it
   * back unchanged, whatever `amount` it asks for now; a settled job gets `reason: 'settled'`.
   */
  async reserve(run: string, jobId: string, amount: Micros): Promise<ReserveOutcome> {
    return this.#reserve(run, jobId, amount, undefined);
  }

  async #reserve(run: string, jobId: string, amount: Micros, fence: LedgerFence | undefined): Promise<ReserveOutcome> {
    const keys = this.#keys(run);
    const id = checkJobId(jobId);
    const micros = encodeMicros(amount, 'amount');
    const { meta, money, reservations, settlements } = keys;
    const reply =
      fence === undefined
        ? await this.#redis.depthqLedgerReserve(meta, money, reservations, settlements, id, micros)
        : await this.#redis.depthqLedgerReserveFenced(
            meta,
            money,
            reservations,
            settlements,
            fence.lockKey,
            id,
            micros,
            fence.token,
          );
    const parts = replyParts(reply, 'reserve');
    const [outcome, detail] = parts;
    refuseLostLock(outcome, jobId);
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    const state = moneyStateOf(parts, 2);
    switch (outcome) {
      case 'reserved':
      case 'held':
        return { ok: true, amount: parseMicros(detail, 'reservation'), alreadyHeld: outcome === 'held', state };
      case 'budget':
        return { ok: false, reason: 'budget', state };
      case 'settled':
        return { ok: false, reason: 'settled', settlement: parseSettlement(detail, jobId), state };
      default:
        throw new LedgerDataError(`reserve replied with an unknown outcome ${JSON.stringify(outcome)}`);
    }
  }

  /**
   * Settles the job once: its reservation (if it holds one) is dropped and `spent`/`possiblyBilled` are added. A job
   * without a reservation (one whose prediction was adopted after a lost reservation) is still counted, once. Later
   * calls change nothing and return the first settlement.
   */
  async settle(
    run: string,
    jobId: string,
    amounts: { readonly spent: Micros; readonly possiblyBilled: Micros },
  ): Promise<SettleOutcome> {
    return this.#settle(run, jobId, amounts, undefined);
  }

  async #settle(
    run: string,
    jobId: string,
    amounts: { readonly spent: Micros; readonly possiblyBilled: Micros },
    fence: LedgerFence | undefined,
  ): Promise<SettleOutcome> {
    const { meta, money, reservations, settlements } = this.#keys(run);
    const id = checkJobId(jobId);
    const spent = encodeMicros(amounts.spent, 'spent');
    const possiblyBilled = encodeMicros(amounts.possiblyBilled, 'possiblyBilled');
    const at = this.#now().toISOString();
    const reply =
      fence === undefined
        ? await this.#redis.depthqLedgerSettle(meta, money, reservations, settlements, id, spent, possiblyBilled, at)
        : await this.#redis.depthqLedgerSettleFenced(
            meta,
            money,
            reservations,
            settlements,
            fence.lockKey,
            id,
            spent,
            possiblyBilled,
            at,
            fence.token,
          );
    const parts = replyParts(reply, 'settle');
    const [outcome, detail] = parts;
    refuseLostLock(outcome, jobId);
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    if (outcome !== 'settled' && outcome !== 'already') {
      throw new LedgerDataError(`settle replied with an unknown outcome ${JSON.stringify(outcome)}`);
    }
    return {
      settlement: parseSettlement(detail, jobId),
      alreadySettled: outcome === 'already',
      state: moneyStateOf(parts, 2),
    };
  }

  /** The money held for the job, if it holds a reservation (it got past its reserve step and has not settled). */
  async reservation(run: string, jobId: string): Promise<Micros | undefined> {
    const held = await this.#redis.hget(this.#keys(run).reservations, checkJobId(jobId));
    return held === null ? undefined : parseMicros(held, 'reservation');
  }

  /** The job's settlement, if it was settled. */
  async settlement(run: string, jobId: string): Promise<Settlement | undefined> {
    const json = await this.#redis.hget(this.#keys(run).settlements, checkJobId(jobId));
    return json === null ? undefined : parseSettlement(json, jobId);
  }

  /**
   * Forgets a job's settlement (its money stays counted), so that the job's next life — `depthq retry` of a job that
   * failed for good — reserves and settles anew. Returns whether there was one.
   */
  async clearSettlement(run: string, jobId: string): Promise<boolean> {
    return (await this.#redis.hdel(this.#keys(run).settlements, checkJobId(jobId))) === 1;
  }

  /**
   * Turns the job's settlement back into its reservation (spent and possibly billed alike), for `depthq retry` of a job
   * that resumes the prediction it already has: the retried job settles again by what that prediction turns out to be,
   * and the money is neither counted twice nor handed back in between. Returns the settlement reopened, if there was one.
   */
  async reopenSettlement(run: string, jobId: string): Promise<Settlement | undefined> {
    const keys = this.#keys(run);
    const reply = await this.#redis.depthqLedgerReopenSettlement(
      keys.meta,
      keys.money,
      keys.reservations,
      keys.settlements,
      checkJobId(jobId),
    );
    const [outcome, detail] = replyParts(reply, 'reopenSettlement');
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    if (outcome === 'none') return undefined;
    if (outcome !== 'reopened') {
      throw new LedgerDataError(`reopenSettlement replied with an unknown outcome ${JSON.stringify(outcome)}`);
    }
    return parseSettlement(detail, jobId);
  }

  /** Drops the job's reservation without spending anything (failed before create, canceled before start). */
  async release(run: string, jobId: string): Promise<ReleaseOutcome> {
    return this.#release(run, jobId, undefined);
  }

  async #release(run: string, jobId: string, fence: LedgerFence | undefined): Promise<ReleaseOutcome> {
    const { meta, money, reservations } = this.#keys(run);
    const id = checkJobId(jobId);
    const reply =
      fence === undefined
        ? await this.#redis.depthqLedgerRelease(meta, money, reservations, id)
        : await this.#redis.depthqLedgerReleaseFenced(meta, money, reservations, fence.lockKey, id, fence.token);
    const parts = replyParts(reply, 'release');
    const [outcome, detail] = parts;
    refuseLostLock(outcome, jobId);
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    if (outcome !== 'released' && outcome !== 'none') {
      throw new LedgerDataError(`release replied with an unknown outcome ${JSON.stringify(outcome)}`);
    }
    return {
      released: outcome === 'released' ? parseMicros(detail, 'reservation') : null,
      state: moneyStateOf(parts, 2),
    };
  }

  /** Whether the run's jobs may start: `paused` parks them, `canceled` ends them. A run starts `active`. */
  async runState(run: string): Promise<RunState> {
    const stored = await this.#redis.get(this.#keys(run).state);
    return RUN_STATES.find((state) => state === stored) ?? 'active';
  }

  /**
   * Changes the run's state; `canceled` is final (a canceled run is never made active or paused again). Any state but
   * `paused` clears the pause's cause (`pauseFor`).
   */
  async setRunState(run: string, state: RunState): Promise<RunState> {
    const keys = this.#keys(run);
    if ((await this.#redis.exists(keys.meta)) !== 1) throw new RunNotFoundError(run);
    // One step, so a pause racing a cancel can never bring a canceled run back.
    const result = await this.#redis.depthqLedgerSetRunState(keys.state, keys.pause, state);
    return RUN_STATES.find((known) => known === result) ?? 'active';
  }

  /**
   * Pauses the run for a problem only a person can fix (an account Replicate refuses), keeping the cause beside the
   * state so `depthq status` says what to fix; `depthq resume` (`setRunState(run, 'active')`) clears it. One step with
   * the state change. A canceled run stays canceled.
   */
  async pauseFor(run: string, cause: { readonly reason: string; readonly message: string }): Promise<PauseOutcome> {
    const keys = this.#keys(run);
    if ((await this.#redis.exists(keys.meta)) !== 1) throw new RunNotFoundError(run);
    const reply = await this.#redis.depthqLedgerPauseFor(
      keys.state,
      keys.pause,
      cause.reason,
      cause.message,
      this.#now().toISOString(),
    );
    const [state, fresh] = replyParts(reply, 'pauseFor');
    const previous = RUN_STATES.find((known) => known === state) ?? 'active';
    return { previous, current: previous === 'canceled' ? 'canceled' : 'paused', newCause: fresh === '1' };
  }

  /** Why depthq paused the run by itself, if it did and the run was not resumed since. */
  async pauseCause(run: string): Promise<PauseCause | undefined> {
    const fields = await this.#redis.hgetall(this.#keys(run).pause);
    const { reason, message, at } = fields;
    if (reason === undefined || message === undefined || at === undefined) return undefined;
    return { reason, message, at };
  }

  /** Sets the budget (`null`: unlimited). Lowering it below what is committed is allowed; nothing new then reserves. */
  async setBudget(run: string, amount: Micros | null): Promise<BudgetState> {
    const keys = this.#keys(run);
    const budget = amount === null ? '' : encodeMicros(amount, 'budget');
    const parts = replyParts(await this.#redis.depthqLedgerSetBudget(keys.meta, keys.money, budget), 'setBudget');
    if (parts[0] === 'no-run') throw new RunNotFoundError(run);
    return moneyStateOf(parts, 2);
  }

  // --- results ------------------------------------------------------------------------------------------------------

  /**
   * Writes the job's row and moves its status counter with it, atomically. Re-recording the same status counts nothing
   * again. Returns the status the job had before (`null` for its first row).
   */
  async recordResult(
    run: string,
    jobId: string,
    row: ResultRow,
  ): Promise<{ readonly previousStatus: ResultStatus | null }> {
    return this.#recordResult(run, jobId, row, undefined);
  }

  async #recordResult(
    run: string,
    jobId: string,
    row: ResultRow,
    fence: LedgerFence | undefined,
  ): Promise<{ readonly previousStatus: ResultStatus | null }> {
    const { meta, results, counters } = this.#keys(run);
    const id = checkJobId(jobId);
    const valid = resultRowSchema.parse(row);
    const json = JSON.stringify(valid);
    const reply =
      fence === undefined
        ? await this.#redis.depthqLedgerRecordResult(meta, results, counters, id, valid.status, json, '')
        : await this.#redis.depthqLedgerRecordResultFenced(
            meta,
            results,
            counters,
            fence.lockKey,
            id,
            valid.status,
            json,
            '',
            fence.token,
          );
    const [outcome, previous] = replyParts(reply, 'recordResult');
    refuseLostLock(outcome, jobId);
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    if (outcome === 'new') return { previousStatus: null };
    const status = RESULT_STATUSES.find((known) => known === previous);
    return { previousStatus: status ?? null };
  }

  /**
   * Replaces the job's row with `row` only while the stored row is still exactly `expected` (compare-and-set, in one
   * step with its counter): how `depthq retry` writes `queued` after BullMQ moved the job, without overwriting a row a
   * worker wrote in between. Returns whether it was written.
   */
  async replaceResultIf(run: string, jobId: string, expected: ResultRow, row: ResultRow): Promise<boolean> {
    const keys = this.#keys(run);
    const valid = resultRowSchema.parse(row);
    const reply = await this.#redis.depthqLedgerRecordResult(
      keys.meta,
      keys.results,
      keys.counters,
      checkJobId(jobId),
      valid.status,
      JSON.stringify(valid),
      // Rows are stored as JSON.stringify of the schema's output, whose keys follow the schema: equal rows, equal text.
      JSON.stringify(resultRowSchema.parse(expected)),
    );
    const [outcome] = replyParts(reply, 'recordResult');
    if (outcome === 'no-run') throw new RunNotFoundError(run);
    if (outcome === 'changed') return false;
    if (outcome !== 'new' && outcome !== 'updated') {
      throw new LedgerDataError(`recordResult replied with an unknown outcome ${JSON.stringify(outcome)}`);
    }
    return true;
  }

  /**
   * Records `queued` rows for many jobs (the enqueue path), each with its payload when given (kept so `depthq retry` can
   * rebuild a job BullMQ removed). Rows that exist are left untouched and not counted again, so a repeated ingest
   * changes nothing. Returns how many rows were new.
   */
  async registerJobs(
    run: string,
    jobs: ReadonlyArray<{ readonly jobId: string; readonly row: QueuedRow; readonly payload?: unknown }>,
  ): Promise<number> {
    const keys = this.#keys(run);
    const encoded = jobs.map(({ jobId, row, payload }) => [
      checkJobId(jobId),
      JSON.stringify(resultRowSchema.parse({ ...row, status: 'queued' })),
      payload === undefined ? '' : JSON.stringify(payload),
    ]);
    let added = 0;
    for (let start = 0; start < encoded.length; start += REGISTER_CHUNK_ROWS) {
      const chunk = encoded.slice(start, start + REGISTER_CHUNK_ROWS).flat();
      const reply = await this.#redis.depthqLedgerRegisterJobs(
        keys.meta,
        keys.results,
        keys.counters,
        keys.payloads,
        ...chunk,
      );
      const [outcome, count] = replyParts(reply, 'registerJobs');
      if (outcome === 'no-run') throw new RunNotFoundError(run);
      added += parseMicros(count, 'registered row count');
    }
    return added;
  }

  /** The payload kept for the job when it was registered (or reseeded), parsed from JSON; `undefined` when none. */
  async payload(run: string, jobId: string): Promise<unknown> {
    const json = await this.#redis.hget(this.#keys(run).payloads, checkJobId(jobId));
    if (json === null) return undefined;
    try {
      return JSON.parse(json);
    } catch (error) {
      throw new LedgerDataError(`The payload of job ${JSON.stringify(jobId)} does not parse`, { cause: error });
    }
  }

  /** Replaces the job's kept payload (a reseeded retry renders another input: a rebuild must render that one). */
  async setPayload(run: string, jobId: string, payload: unknown): Promise<void> {
    const json = JSON.stringify(payload);
    if (json === undefined) throw new TypeError('a payload must be JSON-serialisable');
    await this.#redis.hset(this.#keys(run).payloads, checkJobId(jobId), json);
  }

  async counters(run: string): Promise<RunCounters> {
    const keys = this.#keys(run);
    const [exists, stored] = await execPair(run, this.#redis.multi().exists(keys.meta).hgetall(keys.counters));
    if (exists !== 1) throw new RunNotFoundError(run);
    const counters = emptyCounters();
    for (const [name, value] of Object.entries(countersRecord(stored))) {
      if (isCounterName(name)) counters[name] = Number(value);
    }
    return counters;
  }

  async result(run: string, jobId: string): Promise<ResultRow | undefined> {
    const json = await this.#redis.hget(this.#keys(run).results, checkJobId(jobId));
    return json === null ? undefined : parseRow(json, jobId);
  }

  /**
   * The rows of `jobIds`, in the same order (`undefined` where a job has none), one HMGET per `batchSize` ids: how a
   * report reads 100k rows in the order it chose without 100k round trips.
   */
  async resultsOf(
    run: string,
    jobIds: readonly string[],
    options: ResultsOptions = {},
  ): Promise<Array<ResultRow | undefined>> {
    const batchSize = options.batchSize ?? 1000;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`batchSize must be a whole number ≥ 1, got ${batchSize}`);
    }
    const keys = this.#keys(run);
    if ((await this.#redis.exists(keys.meta)) !== 1) throw new RunNotFoundError(run);
    const rows: Array<ResultRow | undefined> = [];
    for (let start = 0; start < jobIds.length; start += batchSize) {
      const batch = jobIds.slice(start, start + batchSize).map(checkJobId);
      if (batch.length === 0) continue;
      const values = await this.#redis.hmget(keys.results, ...batch);
      batch.forEach((jobId, index) => {
        const json = values[index];
        rows.push(json === null || json === undefined ? undefined : parseRow(json, jobId));
      });
    }
    return rows;
  }

  /**
   * Every result row, in no particular order, each job once (`scanHash`: a run of 100k rows never blocks Redis or loads
   * at once; rows written during the scan may or may not be seen).
   */
  async *results(run: string, options: ResultsOptions = {}): AsyncGenerator<LedgerResult> {
    const batchSize = options.batchSize ?? 1000;
    const keys = this.#keys(run);
    if ((await this.#redis.exists(keys.meta)) !== 1) throw new RunNotFoundError(run);
    for await (const [jobId, json] of scanHash(this.#redis, keys.results, batchSize)) {
      yield { jobId, row: parseRow(json, jobId) };
    }
  }
}
