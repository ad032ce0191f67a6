/**
 * The dashboard in headless Chromium (Debian's, driven by playwright-core) against a real server on a real stack: the
 * runs page follows a run a real worker renders on the simulator without a reload; a run page shows a failure reason
 * and gallery images that load; bull-board lists the queue and its jobs; a pause from a run page pauses the run in
 * the ledger. Screenshots of each page go to .tmp/screenshots/ (ignored by git; README's copies are in
 * docs/screenshots/, refreshed by copying these).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderJobIdOf } from '../../src/core/render-job.js';
import { type RunningDashboard, startDashboardServer } from '../../src/dashboard/server.js';
import { startRenderWorker } from '../../src/worker/start.js';
import {
  prepareRenderRun,
  type RenderRunFixture,
  useRenderRunCleanup,
  waitForCounters,
} from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';

const SCREENSHOTS = path.resolve(import.meta.dirname, '../../.tmp/screenshots');
/** Long enough for each render to be seen on the page (a worker of 2 renders 10 jobs in five or more waves). */
const stack = useLocalStack({
  simulator: { startDelayMs: { min: 200, max: 400 }, latencyMs: { min: 2000, max: 3000 }, outputMaxSide: 256 },
});
const { fixtures, workers } = useRenderRunCleanup();

let fixture: RenderRunFixture;
let dashboard: RunningDashboard | undefined;
let context: BrowserContext | undefined;
let profile: string | undefined;

beforeAll(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  fixture = await prepareRenderRun(stack(), { images: 5, styles: ['day', 'night'], env: { DEPTHQ_JOB_ATTEMPTS: '1' } });
  fixtures.push(fixture);
  // One control image gone: its two jobs fail, and the run page has a failure reason to show.
  const broken = fixture.jobs[0];
  if (broken === undefined) throw new Error('no jobs');
  await fixture.s3.send(new DeleteObjectCommand({ Bucket: broken.controlImage.bucket, Key: broken.controlImage.key }));
  dashboard = await startDashboardServer({
    config: fixture.config,
    port: 0,
    allowActions: true,
    liveIntervalMs: 400,
  });
  profile = mkdtempSync(path.join(tmpdir(), 'depthq-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  // No internet here: bull-board's Google Fonts (and anything else off this machine) are refused at once.
  await context.route(
    (url) => url.hostname !== '127.0.0.1',
    (route) => route.abort(),
  );
}, 120_000);

afterAll(async () => {
  await context?.close();
  await dashboard?.close();
  if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
});

function url(pathname: string): string {
  if (dashboard === undefined) throw new Error('the dashboard is not running');
  return `${dashboard.url}${pathname}`;
}

async function newPage(): Promise<Page> {
  if (context === undefined) throw new Error('no browser');
  return context.newPage();
}

async function succeededOnPage(page: Page, run: string): Promise<number> {
  const text = await page.locator(`[data-run="${run}"] [data-count="succeeded"]`).textContent();
  return text === null ? -1 : Number(text);
}

// The page-side checks are strings: they run in the browser, and this project's TypeScript has no DOM types.
const ALL_GALLERY_IMAGES_LOADED = `(() => {
  const images = [...document.querySelectorAll('.gallery img')];
  return images.length === 16 && images.every((image) => image.complete && image.naturalWidth > 0);
})()`;

describe('dashboard in a browser', () => {
  it('follows a live run on the runs page without a reload', async () => {
    const page = await newPage();
    await page.goto(url('/'));
    expect(await succeededOnPage(page, fixture.run)).toBe(0);
    // Survives only as long as the document does: a reload would drop it.
    await page.evaluate('window.depthqNoReload = true');
    const worker = await startRenderWorker(fixture.config, { concurrency: 2 });
    workers.push(worker);
    await expect
      .poll(() => succeededOnPage(page, fixture.run), { timeout: 120_000, interval: 100 })
      .toBeGreaterThanOrEqual(2);
    const seenMidRun = await succeededOnPage(page, fixture.run);
    const counters = await fixture.ledger.counters(fixture.run);
    // Caught while the run was still going: the page advanced by itself, not because it loaded at the end.
    await page.locator('body').screenshot({ path: path.join(SCREENSHOTS, 'dashboard-runs.png') });
    expect(seenMidRun).toBeGreaterThanOrEqual(2);
    expect(counters.succeeded + counters.failed).toBeLessThan(10);
    await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded + c.failed === 10, 180_000);
    await expect.poll(() => succeededOnPage(page, fixture.run), { timeout: 60_000, interval: 100 }).toBe(8);
    expect(await page.evaluate('window.depthqNoReload === true')).toBe(true);
    expect(Number(await page.getAttribute('#live', 'data-updates'))).toBeGreaterThan(1);
    await page.close();
  }, 300_000);

  it('shows a run page with its failure reason and gallery images that load', async () => {
    const row = (await fixture.ledger.result(fixture.run, failedJobOf(fixture))) ?? { reason: undefined };
    expect(row.reason).toBeDefined();
    const page = await newPage();
    await page.goto(url(`/runs/${fixture.run}`));
    await expect.poll(() => page.locator(`tr[data-reason="${row.reason}"] td.num`).textContent()).toBe('2');
    await page.waitForFunction(ALL_GALLERY_IMAGES_LOADED, undefined, { timeout: 60_000, polling: 200 });
    expect(await page.locator('svg[data-chart="throughput"] rect.bar').count()).toBeGreaterThan(0);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-run.png'), fullPage: true });
    await page.close();
  }, 120_000);

  it('shows bull-board with the render queue and its jobs', async () => {
    const page = await newPage();
    await page.goto(url('/queues'));
    await page.getByText('render', { exact: true }).first().waitFor({ timeout: 60_000 });
    await page.goto(url('/queues/queue/render?status=completed'));
    await page.getByText(succeededJobOf(fixture)).first().waitFor({ timeout: 60_000 });
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dashboard-queues.png'), fullPage: false });
    await page.close();
  }, 120_000);

  it('pauses a run from its page (--allow-actions), as the ledger shows', async () => {
    const page = await newPage();
    await page.goto(url(`/runs/${fixture.run}`));
    expect(await fixture.ledger.runState(fixture.run)).toBe('active');
    await page.click('button[data-action="pause"]');
    await page.waitForSelector('.notice-ok', { timeout: 60_000 });
    expect(await page.textContent('.notice-ok')).toContain('Paused');
    expect(await fixture.ledger.runState(fixture.run)).toBe('paused');
    await expect.poll(() => page.locator('[data-field="state"]').textContent(), { timeout: 60_000 }).toMatch(/^paused/);
    await page.close();
  }, 120_000);
});

/** The last image's jobs render (only the first image's control image is gone). */
function succeededJobOf(run: RenderRunFixture): string {
  const last = run.jobs.at(-1);
  if (last === undefined) throw new Error('no jobs');
  return renderJobIdOf(last);
}

function failedJobOf(run: RenderRunFixture): string {
  const broken = run.jobs[0];
  if (broken === undefined) throw new Error('no jobs');
  return renderJobIdOf(broken);
}
