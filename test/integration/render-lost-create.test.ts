/**
 * A create whose answer never came back, on the real stack (redis-server, s3rver, the simulator) with real worker
 * processes: the sequences of issue 10, items 1–3, each checked against what the invoice will say — the simulator's
 * billing oracle (one create, no input billed twice) and the ledger's money to the micro-dollar.
 *
 * 1. The fence covers the create: a worker's POST is held in the network while the worker is stopped past its lock; the
 *    worker that takes the job over finds nothing by listing and must wait (no create) until that POST can no longer
 *    arrive, then adopt it.
 * 2. An unknown outcome, then a 429 — on the reconciling list, or on the re-send: the job must never act as if nothing
 *    was created.
 * 3. Reconciliation on real data: a listing with foreign predictions the provider cannot parse still finds the job's.
 *
 * The worker's REPLICATE_BASE_URL is a scripted proxy in front of the simulator (below): it holds a request until the
 * test releases it, loses an answer after the simulator has done the work (reads it, then resets the client), or
 * rewrites a listing's JSON; a tag in a worker's base URL tells which worker sent a request. `test/helpers/latency-proxy.ts`
 * can only hold for a delay fixed on arrival and cannot rewrite a body, so this file has its own. Nothing waits a fixed time for something to happen: every wait is on an
 * observed condition (the proxy's requests, the simulator's counters, the job's checkpoint, a worker's log line).
 */
import { type ClientRequest, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { type Checkpoint, readCheckpoint } from '../../src/core/checkpoint.js';
import { fluxDepthPro } from '../../src/core/models.js';
import { type RenderJob, renderJobIdOf } from '../../src/core/render-job.js';
import { LOCAL_SIMULATOR_TOKEN, type LocalSimulatorOptions } from '../../src/local/stack.js';
import { type RunningSimulator, startSimulator } from '../../src/sim/index.js';
import { prepareRenderRun, type RenderRunFixture, waitForCounters, workerEnvironment } from '../helpers/render-run.js';
import { useLocalStack } from '../helpers/stack.js';
import {
  startWorker,
  useWorkerProcesses,
  type WorkerLogLine,
  type WorkerProcess,
  waitForCondition,
  waitForLogLine,
} from '../helpers/worker-process.js';

// Each test has a simulator of its own (its stats count that test's one job only).
const stack = useLocalStack({ simulator: false });
const { deferCleanup } = useWorkerProcesses();

// ---------------------------------------------------------------------------------------------------------------------
// A scripted proxy in front of the simulator
// ---------------------------------------------------------------------------------------------------------------------

interface RequestHead {
  readonly method: string;
  /** Path and query, as forwarded to the server (without the client's tag). */
  readonly path: string;
  /** Which client sent it: the `<tag>` of a base URL `<proxy>/c/<tag>/…` (see `clientUrl`). */
  readonly client?: string;
}

/**
 * What the proxy does with one request, decided when its head arrives:
 * - `forward`: byte for byte, both ways;
 * - `hold`: nothing reaches the server until `release()` (the body waits in the socket); a client that goes away while
 *   held has its request dropped;
 * - `lose-answer`: forwarded; the server's answer is read in full (the server did the work), `onAnswered` runs, then the
 *   client's connection is reset instead of answered — a response lost in the network;
 * - `rewrite-json`: forwarded; a 200 answer's JSON body goes through `rewrite` before the client gets it.
 */
type ProxyAction =
  | { readonly kind: 'forward' }
  | { readonly kind: 'hold' }
  | { readonly kind: 'lose-answer'; readonly onAnswered?: () => void }
  | { readonly kind: 'rewrite-json'; readonly rewrite: (body: unknown) => unknown; readonly onAnswered?: () => void };

type ProxyRule = (head: RequestHead) => ProxyAction;

/** `lost`: the server answered, the client got a reset instead; `aborted`: the client went away first. */
type ScriptedState = 'held' | 'forwarded' | 'completed' | 'lost' | 'aborted' | 'failed';

interface ScriptedRequest extends RequestHead {
  readonly id: number;
  readonly action: ProxyAction['kind'];
  readonly state: ScriptedState;
  /** The server's status, once it answered. */
  readonly status?: number;
}

interface ScriptedProxy {
  readonly url: string;
  /** The proxy's URL for one client: requests through it are recorded with that client's tag. */
  clientUrl(tag: string): string;
  /** Every request so far, oldest first (a snapshot). */
  requests(): readonly ScriptedRequest[];
  /** Forwards every held request now; returns how many. */
  release(): number;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect']);

function forwardedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

async function startScriptedProxy(target: string, rule: ProxyRule): Promise<ScriptedProxy> {
  const upstream = new URL(target);
  const seen: Array<{ -readonly [K in keyof ScriptedRequest]: ScriptedRequest[K] }> = [];
  const held = new Map<number, () => void>();
  const sockets = new Set<Socket>();

  const server = createServer({ keepAlive: true }, (request, response) => {
    const tagged = /^\/c\/([^/]+)(\/.*)$/.exec(request.url ?? '/');
    const head: RequestHead = tagged?.[1]
      ? { method: request.method ?? 'GET', path: tagged[2] ?? '/', client: tagged[1] }
      : { method: request.method ?? 'GET', path: request.url ?? '/' };
    const action = rule(head);
    const record = { id: seen.length + 1, ...head, action: action.kind, state: 'held' as ScriptedState } as {
      -readonly [K in keyof ScriptedRequest]: ScriptedRequest[K];
    };
    seen.push(record);
    let upstreamRequest: ClientRequest | undefined;

    response.once('close', () => {
      held.delete(record.id);
      if (record.state === 'lost' || record.state === 'failed') return;
      if (response.writableFinished) {
        record.state = 'completed';
        return;
      }
      record.state = 'aborted';
      upstreamRequest?.destroy();
    });

    const forward = () => {
      held.delete(record.id);
      record.state = 'forwarded';
      upstreamRequest = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: head.method,
          path: head.path,
          headers: forwardedHeaders(request.headers),
          agent: false,
        },
        (answer) => {
          const status = answer.statusCode ?? 502;
          record.status = status;
          if (action.kind === 'forward' || action.kind === 'hold') {
            response.writeHead(status, forwardedHeaders(answer.headers));
            answer.pipe(response);
            return;
          }
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.once('end', () => {
            action.onAnswered?.();
            if (action.kind === 'lose-answer') {
              record.state = 'lost';
              request.socket.resetAndDestroy();
              return;
            }
            let body = Buffer.concat(chunks);
            if (status === 200) body = Buffer.from(JSON.stringify(action.rewrite(JSON.parse(body.toString('utf8')))));
            const { 'content-length': _length, ...headers } = forwardedHeaders(answer.headers);
            response.writeHead(status, { ...headers, 'content-length': String(body.length) });
            response.end(body);
          });
        },
      );
      upstreamRequest.once('error', (error) => {
        if (record.state !== 'forwarded') return;
        record.state = 'failed';
        if (response.headersSent) response.destroy();
        else response.writeHead(502, { 'content-type': 'text/plain' }).end(`scripted proxy: ${error.message}\n`);
      });
      request.pipe(upstreamRequest);
    };

    if (action.kind === 'hold') held.set(record.id, forward);
    else forward();
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    clientUrl: (tag) => `http://127.0.0.1:${port}/c/${tag}`,
    requests: () => seen.map((record) => ({ ...record })),
    release() {
      const waiting = [...held.values()];
      for (const forward of waiting) forward();
      return waiting.length;
    },
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        held.clear();
        server.close((error) => (error ? reject(error) : resolve()));
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

const isCreate = (head: RequestHead) =>
  head.method === 'POST' && /^\/v1\/models\/[^/]+\/[^/]+\/predictions$/.test(head.path);
const isList = (head: RequestHead) => head.method === 'GET' && /^\/v1\/predictions(\?|$)/.test(head.path);

/** The first request that matches gets `first`; every other request is forwarded. */
function firstOnly(matches: (head: RequestHead) => boolean, first: () => ProxyAction): ProxyRule {
  let used = false;
  return (head) => {
    if (used || !matches(head)) return { kind: 'forward' };
    used = true;
    return first();
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// One job on its own simulator, behind the scripted proxy
// ---------------------------------------------------------------------------------------------------------------------

interface Scene {
  readonly fixture: RenderRunFixture;
  readonly job: RenderJob;
  readonly jobId: string;
  readonly simulator: RunningSimulator;
  readonly proxy: ScriptedProxy;
  readonly env: Record<string, string>;
}

interface SceneOptions {
  /** Decides each API request's fate; it gets the scene's simulator (to throttle it at the right moment). */
  readonly rule: (simulator: RunningSimulator) => ProxyRule;
  readonly simulator?: LocalSimulatorOptions;
  readonly env?: Record<string, string>;
}

async function setUpScene(options: SceneOptions): Promise<Scene> {
  const simulator = await startSimulator({
    apiToken: LOCAL_SIMULATOR_TOKEN,
    startDelayMs: { min: 10, max: 30 },
    latencyMs: { min: 100, max: 200 },
    outputMaxSide: 64,
    ...options.simulator,
  });
  deferCleanup(() => simulator.close());
  const proxy = await startScriptedProxy(simulator.url, options.rule(simulator));
  deferCleanup(() => proxy.close());
  const fixture = await prepareRenderRun(stack(), { images: 1, styles: ['day'] });
  deferCleanup(() => fixture.close());
  const job = fixture.jobs[0];
  if (job === undefined) throw new Error('the run has no job');
  const env = workerEnvironment(stack(), fixture.prefix, {
    // Every API request of the worker goes through the proxy; output files are fetched from the simulator directly.
    REPLICATE_BASE_URL: `${proxy.url}/v1`,
    REPLICATE_API_TOKEN: LOCAL_SIMULATOR_TOKEN,
    ...options.env,
  });
  return { fixture, job, jobId: renderJobIdOf(job), simulator, proxy, env };
}

async function checkpointOf(scene: Scene): Promise<Checkpoint> {
  const job = await Job.fromId(scene.fixture.queue, scene.jobId);
  if (job === undefined) throw new Error(`job ${scene.jobId} is gone from BullMQ`);
  return readCheckpoint((job.data as Record<string, unknown>).checkpoint);
}

function createRequestsSeen(scene: Scene): readonly ScriptedRequest[] {
  return scene.proxy.requests().filter(isCreate);
}

const PRICE = fluxDepthPro.priceMicrosPerImage;

/**
 * The invoice: the job succeeded once, one create reached the simulator and was billed once, the ledger spent exactly
 * one image's price with nothing reserved or possibly billed, and every life of the job knew one prediction only.
 */
async function expectPaidOnce(scene: Scene, workers: readonly WorkerProcess[]): Promise<Checkpoint> {
  const { fixture, jobId } = scene;
  const describeWorkers = () => workers.map((worker) => worker.describe()).join('\n');
  const counters = await waitForCounters(fixture.ledger, fixture.run, (c) => c.succeeded === 1, 25_000);
  expect(counters, describeWorkers()).toMatchObject({ total: 1, succeeded: 1, failed: 0, running: 0 });
  await waitForCondition(
    'the job completing in BullMQ',
    async () => (await fixture.queue.getJobState(jobId)) === 'completed',
    { timeoutMs: 10_000 },
  );
  const row = await fixture.ledger.result(fixture.run, jobId);
  expect(row).toMatchObject({ status: 'succeeded', costMicros: PRICE });
  const predictionId = row?.predictionId;
  if (predictionId === undefined) throw new Error('the succeeded row names no prediction');
  expect(row?.predictionIds).toEqual([predictionId]);

  expect(scene.simulator.stats(), describeWorkers()).toMatchObject({
    creates: 1,
    billedPredictions: 1,
    billedImages: 1,
    billedInputs: 1,
    inputsBilledMoreThanOnce: 0,
  });
  expect(await fixture.ledger.money(fixture.run)).toMatchObject({ spent: PRICE, reserved: 0, possiblyBilled: 0 });

  const checkpoint = await checkpointOf(scene);
  expect(checkpoint).toMatchObject({ recorded: true, predictionId, predictionIds: [predictionId] });
  // Found, not created anew: a job that gave up looking would have marked itself orphan-suspected.
  expect(checkpoint.orphanSuspected).toBe(false);
  return checkpoint;
}

/** The line of whichever worker logged `msg` for this job, once one has. */
async function waitForAnyLogLine(
  workers: readonly WorkerProcess[],
  scene: Scene,
  msg: string,
  timeoutMs: number,
): Promise<WorkerLogLine> {
  let found: WorkerLogLine | undefined;
  await waitForCondition(
    `a worker logging "${msg}"`,
    () => {
      for (const worker of workers) {
        found ??= worker.logLines().find((line) => line.msg === msg && line.jobId === scene.jobId);
      }
      return found !== undefined;
    },
    { timeoutMs },
  );
  if (found === undefined) throw new Error('unreachable');
  return found;
}

const PARKED_IN_FLIGHT = 'a lost create may still be in flight: waiting';
const ADOPTED_LATER = 'adopted the prediction a previous attempt created';
const ADOPTED_IN_CREATE = 'create answer lost: adopted by input';
const LOCK_LOST = 'lost the job to another worker (its lock expired): stopped without side effects';
const THROTTLED = 'provider throttled: the whole queue waits';

// ---------------------------------------------------------------------------------------------------------------------

describe('issue 10, item 1: the fence covers the create', () => {
  it('a POST held in the network while its worker is stopped past its lock: the next worker waits instead of creating, then adopts it', async () => {
    // One send may stay in flight 6 s (the transport's timeout) + 6 s (Prefer: wait): 12 s after it left. The takeover
    // takes about 5 s (the lock's expiry, two stalled checks, and BullMQ's 5 s blocking fetch of the idle worker B),
    // up to about 9 s at worst: the window must still be open when B looks.
    const longestCreateSendMs = 6_000 + 6 * 1_000;
    const scene = await setUpScene({
      rule: () => firstOnly(isCreate, () => ({ kind: 'hold' })),
      env: {
        DEPTHQ_PROVIDER_TIMEOUT_MS: '6000',
        DEPTHQ_CREATE_WAIT_SECONDS: '6',
        DEPTHQ_LOCK_DURATION_MS: '2000',
        DEPTHQ_STALLED_INTERVAL_MS: '1000',
      },
    });
    // Both workers are up before the job is taken, so the takeover below is the lock's expiry, not a process start.
    const workers = await Promise.all(
      ['one', 'two'].map((name) =>
        startWorker({ env: { ...scene.env, REPLICATE_BASE_URL: `${scene.proxy.clientUrl(name)}/v1` }, name }),
      ),
    );
    await waitForCondition(
      "a worker's create held by the network, after its fenced creating mark",
      async () =>
        createRequestsSeen(scene).some((request) => request.state === 'held') &&
        (await checkpointOf(scene)).creating !== undefined,
      { timeoutMs: 20_000, workers },
    );
    const sentAt = (await checkpointOf(scene)).creating?.sentAt;
    if (sentAt === undefined) throw new Error('no creating mark');
    // Worker A is the one whose POST is held; B is the other.
    const sender = createRequestsSeen(scene)[0]?.client;
    const workerA = workers.find((worker) => worker.name === sender);
    const workerB = workers.find((worker) => worker.name !== sender);
    if (workerA === undefined || workerB === undefined) throw new Error(`no worker sent the held create (${sender})`);
    // A network flap seen from the worker: its event loop stops, its lock is not renewed, its POST is still out there.
    workerA.pause();

    // B takes the job over once A's lock expires. It either waits (the fix) or sends a create of its own (the bug).
    let parked: WorkerLogLine | undefined;
    await waitForCondition(
      'worker B parking the job, or sending a create of its own',
      () => {
        parked = workerB.logLines().find((line) => line.msg === PARKED_IN_FLIGHT && line.jobId === scene.jobId);
        return parked !== undefined || createRequestsSeen(scene).length > 1;
      },
      { timeoutMs: 20_000, workers: [workerB] },
    );
    expect(createRequestsSeen(scene), workerB.describe()).toHaveLength(1);
    // B took the job over, listed, found nothing (the POST has not reached the simulator) and sent nothing itself.
    expect(scene.simulator.stats()).toMatchObject({ createRequests: 0, creates: 0 });
    expect(createRequestsSeen(scene).map((request) => request.state)).toEqual(['held']);
    expect(scene.simulator.stats().lists).toBeGreaterThanOrEqual(1);
    // It waits until A's send can no longer arrive, as a delayed job that spent no attempt.
    expect(parked).toMatchObject({ sentAt, untilMs: Date.parse(sentAt) + longestCreateSendMs });
    await waitForCondition(
      'the job parked as a delayed job',
      async () => (await scene.fixture.queue.getJobState(scene.jobId)) === 'delayed',
      { timeoutMs: 5_000, workers: [workerB] },
    );
    expect((await Job.fromId(scene.fixture.queue, scene.jobId))?.attemptsMade).toBe(0);
    expect(Date.now()).toBeLessThan(Date.parse(sentAt) + longestCreateSendMs);

    // The held POST arrives, inside its window: the one create.
    expect(scene.proxy.release()).toBe(1);
    await waitForCondition('the held create reaching the simulator', () => scene.simulator.stats().creates === 1, {
      timeoutMs: 5_000,
    });
    // A wakes up to its answer; the checkpoint write that would record it is refused (B's life owns the job now).
    workerA.resume();
    await waitForLogLine(workerA, (line) => line.msg === LOCK_LOST && line.jobId === scene.jobId, 10_000);

    // Whoever takes the job when its wait ends finds the prediction A's POST created.
    const adopted = await waitForAnyLogLine([workerA, workerB], scene, ADOPTED_LATER, 20_000);
    const checkpoint = await expectPaidOnce(scene, [workerA, workerB]);
    expect(adopted.predictionId).toBe(checkpoint.predictionId);
    expect(scene.simulator.stats().createRequests).toBe(1);
    expect(createRequestsSeen(scene).map((request) => request.state)).toEqual(['completed']);
  });
});

describe('issue 10, item 2: an unknown outcome, then a 429', () => {
  it('the answer to the create is lost and the reconciling list is throttled: no second create, the job adopts its prediction', async () => {
    // The transport retries a throttled GET 6 times (never sooner than Retry-After): 6 forced 429s make the lookup fail.
    const scene = await setUpScene({
      rule: (simulator) =>
        firstOnly(isCreate, () => ({ kind: 'lose-answer', onAnswered: () => simulator.throttleNext(6, 1) })),
    });
    const worker = await startWorker({ env: scene.env, name: 'worker' });

    // The lookup failed with a 429 after an unknown outcome: the job waits with the queue, its creating mark kept.
    await waitForLogLine(worker, (line) => line.msg === THROTTLED && line.jobId === scene.jobId, 25_000);
    const checkpoint = await expectPaidOnce(scene, [worker]);
    expect(checkpoint.creating?.sendsEndedAt).toBeDefined();
    const adopted = await waitForLogLine(worker, (line) => line.msg === ADOPTED_LATER, 1_000);
    expect(adopted.predictionId).toBe(checkpoint.predictionId);
    expect(scene.simulator.stats()).toMatchObject({ createRequests: 1, throttled: 6 });
    expect(createRequestsSeen(scene).map((request) => request.state)).toEqual(['lost']);
  });

  it('the answer to the create is lost, the list does not show it yet, and the re-send is throttled: no second create', async () => {
    // The first listing comes back empty (a lagging index); the re-send that follows it is answered 429.
    const scene = await setUpScene({
      rule: (simulator) => {
        const loseFirstCreate = firstOnly(isCreate, () => ({ kind: 'lose-answer' }));
        const hideFromFirstList = firstOnly(isList, () => ({
          kind: 'rewrite-json',
          rewrite: (page) => ({ ...(page as Record<string, unknown>), results: [], next: null }),
          onAnswered: () => simulator.throttleNext(1, 1),
        }));
        return (head) => (isCreate(head) ? loseFirstCreate(head) : hideFromFirstList(head));
      },
    });
    const worker = await startWorker({ env: scene.env, name: 'worker' });

    await waitForLogLine(worker, (line) => line.msg === THROTTLED && line.jobId === scene.jobId, 20_000);
    const checkpoint = await expectPaidOnce(scene, [worker]);
    // The re-send was fenced (recorded before it left) and the 429 it got did not clear the mark.
    expect(checkpoint.creating?.lastSentAt).toBeDefined();
    expect(checkpoint.creating?.sendsEndedAt).toBeDefined();
    const adopted = await waitForLogLine(worker, (line) => line.msg === ADOPTED_LATER, 1_000);
    expect(adopted.predictionId).toBe(checkpoint.predictionId);
    // Two POSTs left the worker: the first created the prediction, the second was refused before creating anything.
    expect(scene.simulator.stats()).toMatchObject({ createRequests: 2, creates: 1, throttled: 1 });
    expect(createRequestsSeen(scene).map((request) => [request.state, request.status])).toEqual([
      ['lost', 201],
      ['completed', 429],
    ]);
  });
});

describe('issue 10, item 3: reconciliation on real data', () => {
  it('a listing with foreign predictions the provider cannot parse still finds the lost create', async () => {
    const foreignAt = () => new Date().toISOString();
    // Newest first, ahead of the job's own prediction: shapes a provider may add or another client may leave.
    const foreign = () => [
      { id: 'foreign-unknown-status', model: 'someone/else', status: 'queued', created_at: foreignAt(), input: {} },
      { id: 'foreign-no-created-at', model: 'someone/else', status: 'succeeded', input: { prompt: 'x' } },
      { model: 'someone/else', status: 'starting', created_at: foreignAt() },
      { id: 'foreign-odd-input', status: 'processing', created_at: foreignAt(), input: 'not an object' },
      { id: 'foreign-parses', model: fluxDepthPro.id, status: 'succeeded', created_at: foreignAt(), input: {} },
    ];
    const scene = await setUpScene({
      rule: () => {
        const loseFirstCreate = firstOnly(isCreate, () => ({ kind: 'lose-answer' }));
        return (head) => {
          if (isList(head)) {
            return {
              kind: 'rewrite-json',
              rewrite: (page) => {
                const { results, ...rest } = page as { results: unknown[] };
                return { ...rest, results: [...foreign(), ...results] };
              },
            };
          }
          return loseFirstCreate(head);
        };
      },
    });
    const worker = await startWorker({ env: scene.env, name: 'worker' });

    const adopted = await waitForLogLine(
      worker,
      (line) => line.msg === ADOPTED_IN_CREATE && line.jobId === scene.jobId,
      20_000,
    );
    const checkpoint = await expectPaidOnce(scene, [worker]);
    expect(adopted.predictionId).toBe(checkpoint.predictionId);
    expect(scene.simulator.stats()).toMatchObject({ createRequests: 1, throttled: 0 });
    expect(createRequestsSeen(scene).map((request) => request.state)).toEqual(['lost']);
    // The lookup read a listing that did carry the foreign predictions.
    expect(
      scene.proxy.requests().filter((request) => isList(request) && request.status === 200).length,
    ).toBeGreaterThan(0);
    // One attempt: nothing failed on the way.
    expect((await Job.fromId(scene.fixture.queue, scene.jobId))?.attemptsMade).toBe(1);
  });
});
