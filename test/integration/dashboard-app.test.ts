/**
 * The dashboard app on real parts (redis-server, s3rver, the simulator, an in-process worker), driven with
 * `app.request()`: pages read from the ledger, thumbnails only for the run's own jobs, basic auth, CSRF, no secrets.
 */
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/dashboard/security-headers.js';
import { startRenderWorker } from '../../src/worker/start.js';
import { dashboardFor, firstEvent, secretsIn } from '../helpers/dashboard.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 10, max: 30 }, latencyMs: { min: 50, max: 150 }, outputMaxSide: 256 },
});
const { fixtures, workers } = useRenderRunCleanup();

let fixture: RenderRunFixture;
/** A second run in the same ledger, never rendered. */
let other: RenderRunFixture;
let failedJobId: string;

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

beforeAll(async () => {
  fixture = await prepareRenderRun(stack(), {
    images: 3,
    styles: ['day', 'night'],
    env: { DEPTHQ_JOB_ATTEMPTS: '1' },
  });
  fixtures.push(fixture);
  // One control image gone: its two jobs fail (for good, one attempt), and the run page has a reason to show.
  const broken = fixture.jobs[0];
  if (broken === undefined) throw new Error('no jobs');
  await fixture.s3.send(new DeleteObjectCommand({ Bucket: broken.controlImage.bucket, Key: broken.controlImage.key }));
  const worker = await startRenderWorker(fixture.config, { concurrency: 4 });
  workers.push(worker);
  const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded + c.failed === 6, 90_000);
  expect(counters).toMatchObject({ succeeded: 4, failed: 2 });
  const failed = [];
  for await (const entry of fixture.ledger.results(fixture.run)) if (entry.row.status === 'failed') failed.push(entry);
  failedJobId = failed[0]?.jobId ?? '';
  other = await prepareRenderRun(stack(), { images: 1, styles: ['day'] });
  fixtures.push(other);
}, 120_000);

describe('dashboard pages', () => {
  it('lists the run with its counts, spend and state, with the security headers', async () => {
    const app = dashboardFor(fixture);
    const response = await app.request('/');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    const page = await response.text();
    expect(page).toContain(`data-run="${fixture.run}"`);
    expect(page).toMatch(/data-count="succeeded">4</);
    expect(page).toMatch(/data-count="failed">2</);
    expect(page).toContain('spent $0.20');
    expect(page).toContain('data-events="/events"');
  });

  it('shows a run page with its failure reason, chart and gallery, and serves its thumbnails and provenance', async () => {
    const app = dashboardFor(fixture);
    const page = await (await app.request(`/runs/${fixture.run}`)).text();
    const failedRow = await fixture.ledger.result(fixture.run, failedJobId);
    expect(failedRow?.reason).toBeDefined();
    expect(page).toContain(`data-reason="${failedRow?.reason}"`);
    expect(page).toMatch(/data-chart="throughput"/);
    const jobs = [...page.matchAll(/data-job="([^"]+)"/g)].map((match) => match[1] ?? '');
    expect(jobs).toHaveLength(4);
    for (const jobId of jobs) {
      for (const kind of ['output', 'control']) {
        const thumb = await app.request(`/runs/${fixture.run}/thumbnails/${encodeURIComponent(jobId)}/${kind}`);
        expect(thumb.status, `${kind} of ${jobId}`).toBe(200);
        expect(thumb.headers.get('content-type')).toBe('image/jpeg');
        const info = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
        expect(info.width).toBeGreaterThan(0);
      }
    }
    const sidecar = await app.request(`/runs/${fixture.run}/jobs/${encodeURIComponent(jobs[0] ?? '')}/sidecar`);
    expect(sidecar.status).toBe(200);
    expect(await sidecar.json()).toMatchObject({ depthq: { run: fixture.run, jobId: jobs[0] } });
  });

  it('answers 404 for an object outside the run: another run, a failed job, `..`, encoded slashes, a bucket key', async () => {
    const app = dashboardFor(fixture);
    const succeeded = (await (await app.request(`/runs/${fixture.run}`)).text()).match(/data-job="([^"]+)"/)?.[1] ?? '';
    const paths = [
      // A job of this run asked for under another run that exists.
      `/runs/${other.run}/thumbnails/${encodeURIComponent(succeeded)}/output`,
      `/runs/${other.run}/jobs/${encodeURIComponent(succeeded)}/sidecar`,
      // A job with no output.
      `/runs/${fixture.run}/thumbnails/${encodeURIComponent(failedJobId)}/output`,
      // Paths and keys instead of job ids.
      `/runs/${fixture.run}/thumbnails/..%2F..%2Fcontrols%2Fimage-1.png/output`,
      `/runs/${fixture.run}/thumbnails/%2e%2e/output`,
      `/runs/${fixture.run}/thumbnails/${encodeURIComponent(fixture.jobs[2]?.output.key ?? 'x')}/output`,
      `/runs/${fixture.run}/thumbnails/${encodeURIComponent(fixture.jobs[2]?.controlImage.key ?? 'x')}/control`,
      `/runs/..%2F${fixture.run}/thumbnails/${encodeURIComponent(succeeded)}/output`,
      `/runs/${fixture.run}/thumbnails/${encodeURIComponent(succeeded)}/..%2Foutput`,
      `/runs/no-such-run/thumbnails/${encodeURIComponent(succeeded)}/output`,
    ];
    for (const path of paths) {
      expect((await app.request(path)).status, path).toBe(404);
    }
    // The same job under its own run is served: the 404s above are not a broken route.
    expect((await app.request(`/runs/${fixture.run}/thumbnails/${encodeURIComponent(succeeded)}/output`)).status).toBe(
      200,
    );
  });

  it('sends the live region as an update event', async () => {
    const shutdown = new AbortController();
    const app = dashboardFor(fixture, { signal: shutdown.signal });
    try {
      const runs = await firstEvent(await app.request('/events'), 'update');
      expect(runs).toContain(`data-run="${fixture.run}"`);
      const run = await firstEvent(await app.request(`/runs/${fixture.run}/events`), 'update');
      expect(run).toMatch(/data-count="succeeded">4</);
      expect(run).toContain('data-job=');
    } finally {
      shutdown.abort();
    }
  });

  it('shows bull-board with the render queue, read-only without --allow-actions', async () => {
    const app = dashboardFor(fixture);
    const page = await app.request('/queues');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<base href="/queues/"');
    const api = await app.request('/queues/api/queues?activeQueue=render&status=completed&page=1');
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
    expect(body.queues.map((queue) => queue.name)).toContain('render');
    expect(body.queues.find((queue) => queue.name === 'render')?.readOnlyMode).toBe(true);
  });
});

describe('dashboard safety', () => {
  it('asks for basic auth on every page but /healthz when credentials are set', async () => {
    const app = dashboardFor(fixture, { credentials: { user: 'ops', password: 'correct horse battery' } });
    for (const path of ['/', `/runs/${fixture.run}`, '/events', '/queues', '/assets/live.js']) {
      const anonymous = await app.request(path);
      expect(anonymous.status, path).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toContain('Basic');
      expect((await app.request(path, { headers: { Authorization: basic('ops', 'wrong') } })).status).toBe(401);
    }
    const ok = await app.request('/', { headers: { Authorization: basic('ops', 'correct horse battery') } });
    expect(ok.status).toBe(200);
    expect((await app.request('/healthz')).status).not.toBe(401);
  });

  it('refuses a cross-site POST (CSRF) and a non-form body; a same-origin form pauses the run', async () => {
    const app = dashboardFor(other, { allowActions: true });
    const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const crossSite = await app.request(`/runs/${other.run}/pause`, {
      method: 'POST',
      headers: { ...form, Origin: 'https://evil.example', 'Sec-Fetch-Site': 'cross-site' },
      body: '',
    });
    expect(crossSite.status).toBe(403);
    const noOrigin = await app.request(`/runs/${other.run}/pause`, { method: 'POST', headers: form, body: '' });
    expect(noOrigin.status).toBe(403);
    const json = await app.request(`/runs/${other.run}/pause`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Origin: 'https://evil.example' },
      body: '{}',
    });
    expect(json.status).toBe(415);
    expect(await other.ledger.runState(other.run)).toBe('active');
    const sameOrigin = await app.request(`/runs/${other.run}/pause`, {
      method: 'POST',
      headers: { ...form, Origin: 'http://localhost', 'Sec-Fetch-Site': 'same-origin' },
      body: '',
    });
    expect(sameOrigin.status).toBe(303);
    expect(await other.ledger.runState(other.run)).toBe('paused');
    const shown = await app.request(sameOrigin.headers.get('location') ?? '/');
    expect(await shown.text()).toContain('Paused: no new job of this run starts.');
    // Without --allow-actions there is no action at all.
    const readOnly = dashboardFor(other);
    const refused = await readOnly.request(`/runs/${other.run}/resume`, {
      method: 'POST',
      headers: { ...form, Origin: 'http://localhost' },
      body: '',
    });
    expect(refused.status).toBe(404);
    expect(await other.ledger.runState(other.run)).toBe('paused');
  });

  it('puts no token, S3 secret or presigned signature on any page, event or bull-board answer', async () => {
    const shutdown = new AbortController();
    const app = dashboardFor(fixture, { signal: shutdown.signal, allowActions: true });
    const env: Record<string, string | undefined> = {
      ...stack().env(),
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
    };
    expect(env.REPLICATE_API_TOKEN?.length ?? 0).toBeGreaterThanOrEqual(6);
    const texts: string[] = [];
    for (const path of [
      '/',
      `/runs/${fixture.run}`,
      '/queues',
      '/queues/api/queues?activeQueue=render&status=completed&page=1',
      '/queues/api/queues?activeQueue=render&status=failed&page=1',
      '/queues/api/redis/stats',
    ]) {
      texts.push(await (await app.request(path)).text());
    }
    texts.push(await firstEvent(await app.request('/events'), 'update'));
    texts.push(await firstEvent(await app.request(`/runs/${fixture.run}/events`), 'update'));
    const jobs = [...(texts[1] ?? '').matchAll(/data-job="([^"]+)"/g)].map((match) => match[1] ?? '');
    for (const jobId of jobs) {
      texts.push(await (await app.request(`/runs/${fixture.run}/jobs/${encodeURIComponent(jobId)}/sidecar`)).text());
    }
    shutdown.abort();
    expect(texts.join('\n')).toContain(fixture.run);
    for (const text of texts) expect(secretsIn(text, env)).toEqual([]);
  });
});
