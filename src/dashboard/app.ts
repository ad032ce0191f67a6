/**
 * The dashboard's web app (`depthq dashboard`): the runs page, run pages with their live events, thumbnails and
 * provenance, the actions (only with `--allow-actions`) and bull-board under `/queues`. A factory over what the command
 * opened (Redis, ledger, queue, S3), so tests drive it with `app.request()` without a socket; `server.ts` listens.
 *
 * Every answer carries the security headers; every path but /healthz asks for the credentials when there are any.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Queue } from 'bullmq';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { Redis } from 'ioredis';
import type { Config } from '../config/index.js';
import { isValidRunId } from '../core/keys.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import type { ImageModelProvider } from '../providers/provider.js';
import type { RenderJobData } from '../queue/render-queue.js';
import { mountActions, NoticeBoard } from './actions.js';
import { LIVE_SCRIPT, STYLESHEET } from './assets.js';
import { authMiddleware, type DashboardCredentials } from './auth.js';
import { BULL_BOARD_PATH, bullBoardRoutes } from './bull-board.js';
import { streamLiveRegion } from './events.js';
import { mountMetricsRoutes } from './metrics-routes.js';
import { html } from './pages/html.js';
import { layout } from './pages/layout.js';
import { runFragment, runPage } from './pages/run-page.js';
import { runsFragment, runsPage } from './pages/runs-page.js';
import { RunDataCache, type RunDataOptions } from './run-data.js';
import { securityHeaders } from './security-headers.js';
import { serveSidecar, serveThumbnail, ThumbnailCache } from './thumbnails.js';

export interface DashboardDeps {
  readonly config: Config;
  readonly redis: Redis;
  readonly ledger: RunLedger;
  readonly queue: Queue<RenderJobData>;
  readonly s3: S3Client;
  /** Built on the first cancel (it needs REPLICATE_API_TOKEN); a ConfigError is shown on the page. */
  readonly providerForCancel: () => ImageModelProvider;
}

export interface DashboardOptions {
  /** Mount pause, resume, cancel, budget and retry, and bull-board's own actions. */
  readonly allowActions: boolean;
  /** Basic-auth credentials (`credentialsFor` in auth.ts); `undefined`: none asked for. */
  readonly credentials: DashboardCredentials | undefined;
  /** How often live pages are refreshed. @defaultValue 1000 */
  readonly liveIntervalMs?: number;
  /** Aborted when the server closes, ending the live streams. */
  readonly signal?: AbortSignal;
  readonly data?: RunDataOptions;
  /** Told of failures the pages turn into a 500 or a skipped update. */
  readonly onError?: (error: unknown) => void;
}

export function createDashboardApp(deps: DashboardDeps, options: DashboardOptions): Hono {
  // bull-board's routes are registered with and without a trailing slash only under a non-strict router.
  const app = new Hono({ strict: false });
  const data = new RunDataCache(deps.ledger, {
    ...options.data,
    ...(options.onError === undefined ? {} : { onBackgroundError: options.onError }),
  });
  const thumbnails = { ledger: deps.ledger, s3: deps.s3, cache: new ThumbnailCache() };
  const notices = new NoticeBoard();
  const live = {
    ...(options.liveIntervalMs === undefined ? {} : { intervalMs: options.liveIntervalMs }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onError === undefined ? {} : { onReadError: options.onError }),
  };

  app.use('*', securityHeaders());
  app.use('*', authMiddleware(options.credentials));
  // After the auth, which leaves /healthz open for probes; /metrics asks for the same credentials as the pages.
  mountMetricsRoutes(app, deps, options.onError === undefined ? {} : { onRedisError: options.onError });

  app.get('/assets/live.js', (c) => {
    c.header('Content-Type', 'text/javascript; charset=utf-8');
    c.header('Cache-Control', 'no-cache');
    return c.body(LIVE_SCRIPT);
  });
  app.get('/assets/dashboard.css', (c) => {
    c.header('Content-Type', 'text/css; charset=utf-8');
    c.header('Cache-Control', 'no-cache');
    return c.body(STYLESHEET);
  });

  app.get('/', async (c) => {
    const cards = await data.overview();
    return c.html(runsPage(cards, deps.config.prefix, { allowActions: options.allowActions }).text);
  });
  app.get('/events', (c) =>
    streamLiveRegion(c, async () => runsFragment(await data.overview(), deps.config.prefix).text, live),
  );

  app.get('/runs/:run', async (c) => {
    const run = c.req.param('run');
    const detail = isValidRunId(run) ? await data.detail(run) : undefined;
    if (detail === undefined) return c.notFound();
    const notice = notices.take(c.req.query('notice'));
    return c.html(
      runPage(detail, { allowActions: options.allowActions, ...(notice === undefined ? {} : { notice }) }).text,
    );
  });
  app.get('/runs/:run/events', (c) => {
    const run = c.req.param('run');
    if (!isValidRunId(run)) return c.notFound();
    return streamLiveRegion(
      c,
      async () => {
        const detail = await data.detail(run);
        return detail === undefined ? undefined : runFragment(detail).text;
      },
      live,
    );
  });
  app.get('/runs/:run/thumbnails/:jobId/:kind{output|control}', (c) =>
    serveThumbnail(
      c,
      thumbnails,
      c.req.param('run'),
      c.req.param('jobId'),
      c.req.param('kind') as 'output' | 'control',
    ),
  );
  app.get('/runs/:run/jobs/:jobId/sidecar', (c) =>
    serveSidecar(c, thumbnails, c.req.param('run'), c.req.param('jobId')),
  );

  if (options.allowActions) {
    mountActions(app, {
      ledger: deps.ledger,
      queue: deps.queue,
      notices,
      retry: { retentionMs: deps.config.replicate.retentionMs, marginMs: deps.config.replicate.retentionMarginMs },
      providerForCancel: deps.providerForCancel,
    });
  }

  app.route(BULL_BOARD_PATH, bullBoardRoutes(deps.queue, { readOnly: !options.allowActions }));

  app.notFound((c) =>
    c.html(
      layout(
        { title: 'Not found', current: 'run', allowActions: options.allowActions },
        html`<h1>Not found</h1><p>Nothing here. <a href="/">All runs</a></p>`,
      ).text,
      404,
    ),
  );
  app.onError((error, c) => {
    // A refusal by a middleware (401 without credentials, 403 from the CSRF check) is an answer, not a failure.
    if (error instanceof HTTPException) return error.getResponse();
    options.onError?.(error);
    // No stack or message on the page: a message from Redis or S3 may name hosts and keys.
    return c.text('The dashboard failed to answer this request; its log says why.', 500);
  });
  return app;
}
