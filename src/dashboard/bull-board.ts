/**
 * bull-board over the render queue, mounted at `BULL_BOARD_PATH`. Read-only (no retry, clean, promote, remove, pause
 * of the queue) unless the dashboard runs with `--allow-actions`: bull-board's own actions bypass the ledger, so even
 * then the run controls on a run page are the ones to use. Each job links to its run's page, which reads the ledger
 * and so still shows the job after BullMQ pruned it.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import type { Hono } from 'hono';
import type { RenderJobData } from '../queue/render-queue.js';
import { segment } from './pages/html.js';

/** Where bull-board lives; its `setBasePath` must be the same path it is mounted under. */
export const BULL_BOARD_PATH = '/queues';

/** The run page of a job, from the run id in its data (every render job carries it). */
export function runPageOfJob(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const run = (data as { run?: unknown }).run;
  return typeof run === 'string' && run !== '' ? `/runs/${segment(run)}` : undefined;
}

export function bullBoardRoutes(queue: Queue<RenderJobData>, options: { readonly readOnly: boolean }): Hono {
  const serverAdapter = new HonoAdapter(serveStatic);
  createBullBoard({
    queues: [
      new BullMQAdapter(queue, {
        readOnlyMode: options.readOnly,
        allowRetries: !options.readOnly,
        description: 'depthq render jobs (money and results live in the run ledger: see the run pages)',
        externalJobUrl: (job) => {
          const href = runPageOfJob(job.data);
          return href === undefined
            ? { href: '/', displayText: 'runs' }
            : { href: `${href}#job-${encodeURIComponent(String(job.id ?? ''))}`, displayText: 'run page' };
        },
      }),
    ],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'depthq queue', miscLinks: [{ text: 'Runs', url: '/' }] } },
  });
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  return serverAdapter.registerPlugin();
}
