/**
 * The dashboard's actions, mounted only with `--allow-actions`: pause, resume, cancel (confirmed by typing the run id),
 * budget and retry failed jobs — the same use cases as the CLI (src/runs/run-controls.ts, cancel-run.ts, retry-jobs.ts).
 *
 * POST only, with a form body, behind hono's `csrf` check (the request's Origin or Sec-Fetch-Site must be this origin):
 * a page on another site cannot make a logged-in browser pause or cancel a run. A body of any other type is refused
 * (415), because `csrf` only inspects the types a cross-site form can send. Each action answers with a redirect to the
 * run page (post/redirect/get), which shows its outcome once.
 */
import { randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Hono } from 'hono';
import { csrf } from 'hono/csrf';
import { ConfigError, UsageError } from '../core/errors.js';
import { formatUsd, InvalidAmountError, type Micros, usdToMicros } from '../core/money.js';
import type { RunLedger, RunMeta } from '../ledger/run-ledger.js';
import type { ImageModelProvider } from '../providers/provider.js';
import type { RenderJobData } from '../queue/render-queue.js';
import { cancelRun } from '../runs/cancel-run.js';
import { type RetryResumeSettings, retryRunJobs } from '../runs/retry-jobs.js';
import { changeBudget, describeBudget, pauseRun, resumeRun } from '../runs/run-controls.js';
import { segment } from './pages/html.js';
import { scrubSecrets } from './run-views.js';

export interface Notice {
  readonly kind: 'ok' | 'error';
  readonly text: string;
}

/** An action's outcome kept for the page its redirect loads: taken once, forgotten after a minute. */
export class NoticeBoard {
  readonly #notices = new Map<string, Notice & { readonly expiresMs: number }>();

  put(notice: Notice): string {
    const now = Date.now();
    for (const [token, kept] of this.#notices) if (kept.expiresMs < now) this.#notices.delete(token);
    const token = randomBytes(12).toString('hex');
    this.#notices.set(token, { ...notice, expiresMs: now + 60_000 });
    return token;
  }

  take(token: string | undefined): Notice | undefined {
    if (token === undefined) return undefined;
    const notice = this.#notices.get(token);
    this.#notices.delete(token);
    return notice === undefined || notice.expiresMs < Date.now() ? undefined : { kind: notice.kind, text: notice.text };
  }
}

export interface ActionDeps {
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  readonly notices: NoticeBoard;
  /** What retry needs to resume a prediction inside the provider's retention (config's). */
  readonly retry: Omit<RetryResumeSettings, 'nowMs'>;
  /** The provider a cancel asks to stop predictions in flight: built on first use (it needs REPLICATE_API_TOKEN). */
  readonly providerForCancel: () => ImageModelProvider;
}

export const ACTIONS = ['pause', 'resume', 'cancel', 'budget', 'retry'] as const;
export type Action = (typeof ACTIONS)[number];

const FORM_TYPES = /^(application\/x-www-form-urlencoded|multipart\/form-data)\b/i;

/** `unlimited` (or `none`) removes the budget; anything else is dollars, exactly (as `depthq budget` takes it). */
export function parseBudgetField(text: string): Micros | null {
  const trimmed = text.trim();
  if (/^(unlimited|none)$/i.test(trimmed)) return null;
  return usdToMicros(trimmed);
}

async function perform(
  deps: ActionDeps,
  action: Action,
  run: string,
  meta: RunMeta,
  form: Record<string, unknown>,
): Promise<string> {
  const { ledger, queue } = deps;
  switch (action) {
    case 'pause': {
      const change = await pauseRun(ledger, run);
      return change.previous === 'paused' ? 'The run was already paused.' : 'Paused: no new job of this run starts.';
    }
    case 'resume': {
      const change = await resumeRun(queue, ledger, run);
      return change.previous === 'active'
        ? `The run was not paused; ${change.released} parked jobs released.`
        : `Resumed: ${change.released} parked jobs released.`;
    }
    case 'budget': {
      const budget = parseBudgetField(typeof form.usd === 'string' ? form.usd : '');
      const change = await changeBudget(queue, ledger, run, budget);
      return (
        `Budget ${describeBudget(change.previous)} → ${describeBudget(change.money.budget)} ` +
        `(spent ${formatUsd(change.money.spent)}); ` +
        (change.paused
          ? 'the run is paused: resume it to release parked jobs.'
          : `${change.released} parked jobs released.`)
      );
    }
    case 'retry': {
      const outcome = await retryRunJobs(
        queue,
        ledger,
        run,
        meta,
        { failed: true, flagged: false, reseed: false },
        deps.retry,
      );
      return `${outcome.requeued.length} failed jobs requeued, ${outcome.skipped.length} skipped.`;
    }
    case 'cancel': {
      if (form.confirm !== run) throw new UsageError(`Not canceled: type the run id "${run}" to confirm.`);
      const outcome = await cancelRun(queue, ledger, deps.providerForCancel(), run, {
        providerRetentionMs: deps.retry.retentionMs,
      });
      const problems = outcome.problems.length === 0 ? '' : ` Problems: ${outcome.problems.join('; ')}`;
      return (
        `${outcome.alreadyCanceled ? 'The run was already canceled' : 'Canceled'}: ${outcome.ended} jobs recorded canceled, ` +
        `${outcome.predictionsCanceled} predictions canceled, ${outcome.leftToWorkers} left to the workers.${problems}`
      );
    }
  }
}

export function mountActions(app: Hono, deps: ActionDeps): void {
  app.post('/runs/:run/:action{pause|resume|cancel|budget|retry}', csrf(), async (c) => {
    if (!FORM_TYPES.test(c.req.header('content-type') ?? '')) {
      return c.text('Actions take a form body (application/x-www-form-urlencoded)', 415);
    }
    const run = c.req.param('run');
    const action = c.req.param('action') as Action;
    const meta = await deps.ledger.getRun(run).catch(() => undefined);
    if (meta === undefined) return c.text('Not found', 404);
    const form = await c.req.parseBody();
    let notice: Notice;
    try {
      notice = { kind: 'ok', text: await perform(deps, action, run, meta, form) };
    } catch (error) {
      // A mistake the person can fix (a canceled run, a bad amount, no token for cancel) is shown; anything else is a bug.
      if (!(error instanceof UsageError || error instanceof ConfigError || error instanceof InvalidAmountError))
        throw error;
      notice = { kind: 'error', text: scrubSecrets(error.message) };
    }
    return c.redirect(`/runs/${segment(run)}?notice=${deps.notices.put(notice)}`, 303);
  });
}
