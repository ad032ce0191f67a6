/**
 * `depthq sheet` of a demo run (the demo's control images, styles and prompts, rendered on the local stack): every
 * image the page shows is a file in the sheet's folder that decodes, failed and flagged cells say why, the PNG grid is
 * drawn — and headless Chromium, opening the page from disk, shows every image (none broken).
 *
 * The browser part needs /usr/bin/chromium (`apt-get install -y chromium`) and is skipped, saying so, without it; the
 * file checks always run. Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`), so no
 * browser-automation package is needed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { fluxDepthPro } from '../../src/core/models.js';
import { DEMO_STYLES, planDemoJobs } from '../../src/demo/demo-plan.js';
import { makeControlImages } from '../../src/local/control-images/index.js';
import { enqueueRenderJobs } from '../../src/queue/render-queue.js';
import { SHEET_MARKER, writeRunSheet } from '../../src/runs/run-sheet.js';
import { GRID_CELL } from '../../src/runs/sheet-grid.js';
import { putBytesObject } from '../../src/storage/s3.js';
import { type RunningRenderWorker, startRenderWorker } from '../../src/worker/start.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters } from '../helpers/render-run.js';
import { uniqueName, useLocalStack } from '../helpers/stack.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `runs-sheet: ${CHROMIUM} is missing, so the headless-browser check is skipped (apt-get install -y chromium)`,
  );
}

const stack = useLocalStack({
  simulator: { startDelayMs: { min: 5, max: 20 }, latencyMs: { min: 20, max: 60 }, outputMaxSide: 256 },
});

const fixtures: RenderRunFixture[] = [];
const workers: RunningRenderWorker[] = [];
const folders: string[] = [];
afterAll(async () => {
  stack().simulator?.setFaults({ flaggedRate: 0 });
  for (const worker of workers) await worker.close();
  for (const fixture of fixtures) await fixture.close();
  for (const folder of folders) await rm(folder, { recursive: true, force: true });
});

const IMAGES = 4;

/** A demo run: `IMAGES` control images × the demo's two styles; one job flagged, one failed, the rest rendered. */
async function renderDemoRun(): Promise<{
  fixture: RenderRunFixture;
  run: string;
  flaggedId: string;
  failedId: string;
}> {
  // The fixture gives the stack's config, ledger and queue; its own one-job run is not the one the sheet shows.
  const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['x'] });
  fixtures.push(fixture);
  const { ledger, queue, s3, bucket } = fixture;
  const run = uniqueName('demo');
  const images = await makeControlImages({ count: IMAGES, width: 384, height: 256 });
  const { controlKeyOf } = await import('../../src/demo/demo-plan.js');
  for (const image of images) {
    await putBytesObject(s3, { bucket, key: controlKeyOf(run, image) }, image.bytes, image.contentType);
  }
  await ledger.createRun(run, {
    model: fluxDepthPro.id,
    budgetMicros: null,
    manifest: { name: 'depthq demo (generated)', sha256: '2'.repeat(64) },
    output: { bucket, prefix: 'renders', keyTemplate: '{run}/{style}/{id}.{ext}' },
    defaults: {},
  });
  const plan = planDemoJobs({ run, bucket, images });
  // Flagged: the first image's first style; failed: the second image's second style — each beside a rendered sibling.
  const flagged = plan[0];
  const failed = plan[3];
  if (flagged === undefined || failed === undefined) throw new Error('plan too small');
  const rest = plan.filter((planned) => planned !== flagged && planned !== failed);
  const simulator = stack().simulator;
  if (simulator === undefined) throw new Error('no simulator');
  workers.push(await startRenderWorker(fixture.config, { concurrency: 4 }));

  simulator.setFaults({ flaggedRate: 1 });
  await enqueueRenderJobs(queue, ledger, run, [flagged.job]);
  await waitForCounters(ledger, run, (c) => c.flagged === 1);
  simulator.setFaults({ flaggedRate: 0 });
  // A control image that is not an image: the job fails for good, with the reason on record.
  const broken = { ...failed.job, controlImage: { bucket, key: `controls/${run}/not-an-image.png` } };
  await putBytesObject(s3, broken.controlImage, new TextEncoder().encode('not a picture'), 'image/png');
  await enqueueRenderJobs(queue, ledger, run, [broken]);
  await waitForCounters(ledger, run, (c) => c.failed === 1);
  await enqueueRenderJobs(
    queue,
    ledger,
    run,
    rest.map((planned) => planned.job),
  );
  const counters = await waitForCounters(ledger, run, (c) => c.succeeded === plan.length - 2);
  expect(counters).toMatchObject({ total: plan.length, succeeded: plan.length - 2, flagged: 1, failed: 1 });
  return { fixture, run, flaggedId: flagged.jobId, failedId: failed.jobId };
}

/** Every `<img src>` of the page, decoded from its HTML escaping and URL encoding. */
function imageSources(html: string): string[] {
  return [...html.matchAll(/<img src="([^"]*)"/g)].map((match) =>
    decodeURIComponent(
      (match[1] ?? '')
        .replace(/&amp;/g, '&')
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'"),
    ),
  );
}

describe('depthq sheet', () => {
  it('writes an offline contact sheet whose every image exists and decodes, with failed and flagged cells explained', async () => {
    const { fixture, run, flaggedId, failedId } = await renderDemoRun();
    const meta = await fixture.ledger.getRun(run);
    if (meta === undefined) throw new Error('no meta');
    const folder = await mkdtemp(path.join(tmpdir(), 'depthq-sheet-'));
    folders.push(folder);
    const outDir = path.join(folder, 'sheet');

    const result = await writeRunSheet({
      ledger: fixture.ledger,
      queue: fixture.queue,
      s3: fixture.s3,
      run,
      meta,
      options: { outDir },
    });
    expect(result).toMatchObject({ rows: IMAGES, images: IMAGES * DEMO_STYLES.length - 2, problems: [] });

    const html = await readFile(result.htmlPath, 'utf8');
    const sources = imageSources(html);
    // One control thumbnail per row (the failed job's row still has its real control image, via its sibling's
    // sidecar), one thumbnail per rendered output.
    expect(sources).toHaveLength(IMAGES + IMAGES * DEMO_STYLES.length - 2);
    for (const source of sources) {
      expect(source).not.toMatch(/^[a-z]+:|^\//);
      const file = path.join(outDir, ...source.split('/'));
      const info = await sharp(file).metadata();
      expect(info.width).toBeGreaterThan(0);
    }
    expect(html).toContain('<th>control image</th>');
    for (const style of DEMO_STYLES) expect(html).toContain(`<th>${style.id}</th>`);
    expect(html).toMatch(/flagged · seed \d+<br><span class="error">[^<]*\(E005\)/);
    expect(html).toMatch(/failed \(fatal\) · seed \d+<br><span class="error">control image [^<]*is not a jpeg/);
    expect(html).toMatch(/seed \d+ · \$0\.05/);
    expect(html).not.toMatch(/https?:\/\//);
    expect(flaggedId).not.toBe(failedId);

    const grid = await sharp(result.gridPath).metadata();
    expect(grid.format).toBe('png');
    expect(grid.width).toBeGreaterThanOrEqual((1 + DEMO_STYLES.length) * GRID_CELL);
    expect(grid.height).toBeGreaterThanOrEqual(IMAGES * GRID_CELL);

    // Running it again replaces the sheet; a folder with someone else's files is refused.
    await writeRunSheet({
      ledger: fixture.ledger,
      queue: fixture.queue,
      s3: fixture.s3,
      run,
      meta,
      options: { outDir },
    });
    expect(existsSync(path.join(outDir, SHEET_MARKER))).toBe(true);
    await writeFile(path.join(folder, 'mine.txt'), 'keep me');
    await expect(
      writeRunSheet({
        ledger: fixture.ledger,
        queue: fixture.queue,
        s3: fixture.s3,
        run,
        meta,
        options: { outDir: folder },
      }),
    ).rejects.toThrow(/did not write/);

    if (!hasChromium) return;
    const shown = await imagesInChromium(result.htmlPath, path.join(folder, 'screenshot.png'));
    expect(
      shown.map((image) => decodeURIComponent(image.src.slice(pathToFileURL(outDir).href.length + 1))).sort(),
    ).toEqual([...sources].sort());
    for (const image of shown) expect(image).toMatchObject({ complete: true, broken: false });
  }, 50_000);
});

// ---------------------------------------------------------------------------------------------------------------------
// Headless Chromium over the DevTools protocol on a pipe: messages are JSON, each ended by a NUL byte.
// ---------------------------------------------------------------------------------------------------------------------

interface ShownImage {
  readonly src: string;
  readonly complete: boolean;
  readonly broken: boolean;
}

async function imagesInChromium(htmlPath: string, screenshotPath: string): Promise<ShownImage[]> {
  const profile = await mkdtemp(path.join(tmpdir(), 'depthq-chromium-'));
  const browser = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--user-data-dir=${profile}`,
      '--remote-debugging-pipe',
      // Tall enough that no lazily loaded image is left below the fold.
      '--window-size=1400,6000',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
  );
  try {
    const cdp = devtoolsOverPipe(browser);
    const { targetId } = (await cdp.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: true })) as {
      sessionId: string;
    };
    await cdp.send('Page.enable', {}, sessionId);
    const loaded = cdp.waitFor('Page.loadEventFired', sessionId);
    await cdp.send('Page.navigate', { url: pathToFileURL(htmlPath).href }, sessionId);
    await loaded;
    const evaluation = (await cdp.send(
      'Runtime.evaluate',
      {
        expression: `Promise.all([...document.images].map((img) => img.decode().then(() => true, () => false)))
          .then(() => [...document.images].map((img) => ({
            src: img.src, complete: img.complete, broken: !img.complete || img.naturalWidth === 0 })))`,
        awaitPromise: true,
        returnByValue: true,
      },
      sessionId,
    )) as { result: { value: ShownImage[] } };
    const shot = (await cdp.send('Page.captureScreenshot', { format: 'png' }, sessionId)) as { data: string };
    await writeFile(screenshotPath, Buffer.from(shot.data, 'base64'));
    await cdp.send('Browser.close').catch(() => undefined);
    return evaluation.result.value;
  } finally {
    if (browser.exitCode === null && browser.signalCode === null) browser.kill('SIGKILL');
    await rm(profile, { recursive: true, force: true });
  }
}

function devtoolsOverPipe(browser: ChildProcess) {
  const input = browser.stdio[3];
  const output = browser.stdio[4];
  if (input === null || input === undefined || output === null || output === undefined || !('write' in input)) {
    throw new Error('chromium started without its DevTools pipes');
  }
  let nextId = 1;
  let buffer = '';
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  const listeners: Array<(message: Record<string, unknown>) => void> = [];
  output.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let end = buffer.indexOf('\0');
    while (end !== -1) {
      const message = JSON.parse(buffer.slice(0, end)) as Record<string, unknown>;
      buffer = buffer.slice(end + 1);
      end = buffer.indexOf('\0');
      const id = typeof message.id === 'number' ? message.id : undefined;
      const waiter = id === undefined ? undefined : pending.get(id);
      if (id !== undefined && waiter !== undefined) {
        pending.delete(id);
        if (message.error !== undefined) waiter.reject(new Error(JSON.stringify(message.error)));
        else waiter.resolve(message.result);
      }
      for (const listener of listeners) listener(message);
    }
  });
  const timeout = <T>(promise: Promise<T>, what: string): Promise<T> =>
    Promise.race([
      promise,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`chromium: no answer to ${what}`)), 15_000)),
    ]);
  return {
    send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<unknown> {
      const id = nextId++;
      const answer = new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
      input.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
      return timeout(answer, method);
    },
    waitFor(method: string, sessionId: string): Promise<void> {
      return timeout(
        new Promise((resolve) => {
          listeners.push((message) => {
            if (message.method === method && message.sessionId === sessionId) resolve();
          });
        }),
        method,
      );
    },
  };
}
