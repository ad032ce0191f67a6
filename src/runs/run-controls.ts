/**
 * `depthq pause`, `depthq resume` and `depthq budget`: changes to a run that the workers pick up from the ledger.
 *
 * Pause: the run's state becomes `paused`. A worker that takes one of its jobs parks it (a delayed job, reason `paused`)
 * before reserving money or creating anything; predictions already under way finish and are recorded. Other runs on the
 * same queue are not affected. A run also pauses itself when the provider refuses the account (reason `account`: a bad
 * token, no credit, a model gone), with the cause in the ledger for `depthq status`. Resume: the state becomes `active`
 * again (the cause is cleared) and the jobs parked for the pause or the account are promoted at once (then those parked
 * for budget, as far as the money goes), instead of waiting out their park delay.
 *
 * Budget: sets the run's budget (or removes it) and wakes jobs parked for budget as far as the money left now pays for.
 * A lowered budget takes effect for every reservation from then on; what is reserved already is not taken back.
 */
import type { Queue } from 'bullmq';
import { UsageError } from '../core/errors.js';
import { type BudgetState, formatUsd, type Micros } from '../core/money.js';
import type { PauseCause, RunLedger, RunState } from '../ledger/run-ledger.js';
import { releaseParkedJobs } from '../queue/parked-jobs.js';
import type { RenderJobData } from '../queue/render-queue.js';

/** A canceled run is final: it cannot be paused, resumed or given money to spend. */
export class RunCanceledError extends UsageError {
  override readonly name: string = 'RunCanceledError';

  constructor(run: string, action: string) {
    super(`run ${JSON.stringify(run)} was canceled, which is final: it cannot be ${action}`);
  }
}

export interface StateChange {
  readonly previous: RunState;
  readonly current: RunState;
  /** Parked jobs promoted by this change. */
  readonly released: number;
  /** Resume: why the run had paused itself (an account the provider refused), now cleared. */
  readonly clearedCause?: PauseCause;
}

export async function pauseRun(ledger: RunLedger, run: string): Promise<StateChange> {
  const previous = await ledger.runState(run);
  if (previous === 'canceled') throw new RunCanceledError(run, 'paused');
  const current = await ledger.setRunState(run, 'paused');
  if (current === 'canceled') throw new RunCanceledError(run, 'paused');
  return { previous, current, released: 0 };
}

export async function resumeRun(queue: Queue<RenderJobData>, ledger: RunLedger, run: string): Promise<StateChange> {
  const previous = await ledger.runState(run);
  if (previous === 'canceled') throw new RunCanceledError(run, 'resumed');
  const clearedCause = await ledger.pauseCause(run);
  const current = await ledger.setRunState(run, 'active');
  if (current === 'canceled') throw new RunCanceledError(run, 'resumed');
  // Jobs parked when the provider refused the account (the run paused itself) first: some hold a running prediction.
  // Budget-parked jobs too: a budget raised during the pause woke none of them (see changeBudget).
  const released =
    (await releaseParkedJobs(queue, ledger, run, 'account')) +
    (await releaseParkedJobs(queue, ledger, run, 'paused')) +
    (await releaseParkedJobs(queue, ledger, run, 'budget'));
  return { previous, current, released, ...(clearedCause === undefined ? {} : { clearedCause }) };
}

export interface BudgetChange {
  readonly previous: Micros | null;
  readonly money: BudgetState;
  /** Jobs parked for budget that were woken. */
  readonly released: number;
  /** The run is paused: nothing was woken; `depthq resume` will. */
  readonly paused: boolean;
}

export async function changeBudget(
  queue: Queue<RenderJobData>,
  ledger: RunLedger,
  run: string,
  budget: Micros | null,
): Promise<BudgetChange> {
  const state = await ledger.runState(run);
  if (state === 'canceled') throw new RunCanceledError(run, 'given a new budget');
  const previous = (await ledger.money(run)).budget;
  const money = await ledger.setBudget(run, budget);
  // Woken jobs of a paused run would only park again, each taking a slot of the queue's rate limit from other runs.
  const released = state === 'paused' ? 0 : await releaseParkedJobs(queue, ledger, run, 'budget');
  return { previous, money, released, paused: state === 'paused' };
}

export function describeBudget(budget: Micros | null): string {
  return budget === null ? 'unlimited' : formatUsd(budget);
}
