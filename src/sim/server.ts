/**
 * HTTP routing for the simulator. Three surfaces:
 * - `/v1/…`: Replicate's API. Every request: auth (401) → rate limit (429) → injected fault (5xx / reset) → handler;
 *   a create with the `insufficient-credit` account fault is answered 402 before anything is created.
 * - `/files/{id}/{name}`: the rendered outputs (Replicate serves these from replicate.delivery: no auth, no limits).
 * - `/_sim/…`: control for tests and the demo (stats, faults, forced throttling). No auth: the simulator is local.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { findModel, type InvalidField, type ModelDefinition, validateModelInput } from '../core/models.js';
import type { FaultInjector } from './faults.js';
import { modelJson, modelOfVersionReference } from './model-page.js';
import { faultChangesSchema } from './options.js';
import type { OutputFileStore } from './output-files.js';
import { decodeCursor, encodeCursor } from './prediction-pages.js';
import type { PredictionEngine } from './predictions.js';
import {
  badRequestProblem,
  inputValidationProblem,
  insufficientCreditProblem,
  invalidVersionProblem,
  methodNotAllowedProblem,
  notFoundProblem,
  type ProblemBody,
  sendJson,
  sendProblem,
  serverErrorProblem,
  throttledProblem,
  unauthenticatedProblem,
} from './problem.js';
import type { RateLimiter } from './rate-limit.js';
import {
  isPlainObject,
  type Parsed,
  parseCancelAfter,
  parsePreferWait,
  parseTimestamp,
  readJsonBody,
} from './request-parsing.js';
import type { RequestCounters, SimulatorStats } from './stats.js';
import { isWebhookEventType, type WebhookEventType, webhookEventTypes } from './webhooks.js';

export interface SimulatorContext {
  readonly apiToken?: string;
  readonly engine: PredictionEngine;
  readonly files: OutputFileStore;
  readonly limiter: RateLimiter;
  readonly faults: FaultInjector;
  readonly counters: RequestCounters;
  readonly webhookSecret: string;
  /** Predictions created per model, for the model object's `run_count`. */
  readonly runCounts: Map<string, number>;
  readonly maxBodyBytes: number;
  readonly publicUrl: () => string;
  readonly stats: () => SimulatorStats;
}

type ApiRoute =
  | { readonly kind: 'create'; readonly modelId?: string }
  | { readonly kind: 'list' }
  | { readonly kind: 'get'; readonly id: string }
  | { readonly kind: 'cancel'; readonly id: string }
  | { readonly kind: 'model'; readonly modelId: string }
  | { readonly kind: 'webhook-secret' }
  | { readonly kind: 'method-not-allowed' }
  | { readonly kind: 'not-found' };

function matchApiRoute(method: string, path: string): ApiRoute {
  const route = (expected: string, matched: ApiRoute): ApiRoute =>
    method === expected ? matched : { kind: 'method-not-allowed' };
  let match = /^\/v1\/models\/([^/]+)\/([^/]+)\/predictions$/.exec(path);
  if (match) return route('POST', { kind: 'create', modelId: `${match[1]}/${match[2]}` });
  if (path === '/v1/predictions') {
    if (method === 'POST') return { kind: 'create' };
    return route('GET', { kind: 'list' });
  }
  match = /^\/v1\/predictions\/([^/]+)\/cancel$/.exec(path);
  if (match?.[1]) return route('POST', { kind: 'cancel', id: match[1] });
  match = /^\/v1\/predictions\/([^/]+)$/.exec(path);
  if (match?.[1]) return route('GET', { kind: 'get', id: match[1] });
  match = /^\/v1\/models\/([^/]+)\/([^/]+)$/.exec(path);
  if (match) return route('GET', { kind: 'model', modelId: `${match[1]}/${match[2]}` });
  if (path === '/v1/webhooks/default/secret') return route('GET', { kind: 'webhook-secret' });
  return { kind: 'not-found' };
}

export function createRequestHandler(
  context: SimulatorContext,
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    handle(context, request, response).catch((error: unknown) => {
      if (response.headersSent || response.destroyed) {
        response.destroy();
        return;
      }
      sendProblem(response, {
        title: 'Internal server error',
        detail: `simulator error: ${error instanceof Error ? error.message : String(error)}`,
        status: 500,
      });
    });
  };
}

async function handle(context: SimulatorContext, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://simulator.invalid');
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  const method = request.method ?? 'GET';
  if (path === '/v1' || path.startsWith('/v1/')) return handleApi(context, request, response, method, path, url);
  if (path.startsWith('/files/')) return serveFile(context, response, method, path);
  if (path.startsWith('/p/')) return serveWebPage(context, response, path);
  if (path.startsWith('/_sim/')) return handleControl(context, request, response, method, path);
  drain(request);
  sendProblem(response, notFoundProblem());
}

function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization ?? '';
  // Replicate also accepts the older `Token <key>` scheme.
  const match = /^(?:Bearer|Token)\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

function drain(request: IncomingMessage): void {
  request.resume();
}

/** Drops the connection without an answer: what a client sees when a proxy or the network fails mid-request. */
function resetConnection(request: IncomingMessage, response: ServerResponse): void {
  response.socket?.destroy();
  request.socket.destroy();
}

async function handleApi(
  context: SimulatorContext,
  request: IncomingMessage,
  response: ServerResponse,
  method: string,
  path: string,
  url: URL,
): Promise<void> {
  const { counters } = context;
  counters.requests += 1;
  const route = matchApiRoute(method, path);
  if (route.kind === 'create') counters.createRequests += 1;

  const token = bearerToken(request);
  const revoked = context.faults.current().accountError === 'unauthenticated';
  if (token === undefined || revoked || (context.apiToken !== undefined && token !== context.apiToken)) {
    counters.unauthorized += 1;
    drain(request);
    return sendProblem(response, unauthenticatedProblem());
  }
  const throttled = context.limiter.check(route.kind === 'create' ? 'create' : 'other');
  if (throttled) {
    counters.throttled += 1;
    drain(request);
    return sendProblem(response, throttledProblem(throttled.retryAfterSeconds), {
      'Retry-After': String(throttled.retryAfterSeconds),
    });
  }
  if (route.kind === 'create') return handleCreate(context, request, response, route.modelId);

  const fault = context.faults.forOtherRequest();
  if (fault?.kind === 'server-error') {
    counters.serverErrors += 1;
    drain(request);
    return sendProblem(response, serverErrorProblem(fault.status));
  }
  if (fault?.kind === 'reset') {
    counters.resets += 1;
    return resetConnection(request, response);
  }
  drain(request);
  switch (route.kind) {
    case 'list':
      counters.lists += 1;
      return listPredictions(context, response, url);
    case 'get': {
      counters.gets += 1;
      const prediction = context.engine.get(route.id);
      return prediction
        ? sendJson(response, 200, context.engine.json(prediction))
        : sendProblem(response, notFoundProblem());
    }
    case 'cancel': {
      counters.cancels += 1;
      const prediction = context.engine.get(route.id);
      if (!prediction) return sendProblem(response, notFoundProblem());
      context.engine.cancel(prediction);
      return sendJson(response, 200, context.engine.json(prediction));
    }
    case 'model': {
      counters.modelGets += 1;
      const model = findModel(route.modelId);
      return model
        ? sendJson(response, 200, modelJson(model, context.runCounts.get(model.id) ?? 0))
        : sendProblem(response, modelNotFound(route.modelId));
    }
    case 'webhook-secret':
      return sendJson(response, 200, { key: context.webhookSecret });
    case 'method-not-allowed':
      return sendProblem(response, methodNotAllowedProblem(method));
    case 'not-found':
      return sendProblem(response, notFoundProblem());
  }
}

function modelNotFound(modelId: string): ProblemBody {
  return notFoundProblem(`Model ${modelId} not found (the simulator knows only the models in depthq's registry)`);
}

interface WebhookRequest {
  readonly webhook?: string;
  readonly events: ReadonlySet<WebhookEventType>;
}

function parseWebhook(body: Record<string, unknown>): Parsed<WebhookRequest> {
  const { webhook, webhook_events_filter: filter } = body;
  let events: ReadonlySet<WebhookEventType> = new Set(webhookEventTypes);
  if (filter !== undefined && filter !== null) {
    if (!Array.isArray(filter) || !filter.every(isWebhookEventType)) {
      return {
        ok: false,
        problem: badRequestProblem(
          `webhook_events_filter must be a list drawn from ${webhookEventTypes.join(', ')}; got ${JSON.stringify(filter)}`,
        ),
      };
    }
    events = new Set(filter);
  }
  if (webhook === undefined || webhook === null) return { ok: true, value: { events } };
  if (typeof webhook !== 'string' || !/^https?:\/\/\S+$/i.test(webhook) || !URL.canParse(webhook)) {
    return { ok: false, problem: badRequestProblem(`webhook must be an http(s) URL; got ${JSON.stringify(webhook)}`) };
  }
  return { ok: true, value: { webhook, events } };
}

function resolveModel(modelIdFromPath: string | undefined, body: Record<string, unknown>): Parsed<ModelDefinition> {
  if (modelIdFromPath !== undefined) {
    const model = findModel(modelIdFromPath);
    return model ? { ok: true, value: model } : { ok: false, problem: modelNotFound(modelIdFromPath) };
  }
  const model = typeof body.version === 'string' ? modelOfVersionReference(body.version) : undefined;
  return model ? { ok: true, value: model } : { ok: false, problem: invalidVersionProblem() };
}

async function handleCreate(
  context: SimulatorContext,
  request: IncomingMessage,
  response: ServerResponse,
  modelIdFromPath: string | undefined,
): Promise<void> {
  const { counters, engine } = context;
  const body = await readJsonBody(request, context.maxBodyBytes);
  if (context.faults.current().accountError === 'insufficient-credit') {
    return sendProblem(response, insufficientCreditProblem());
  }
  const faults = context.faults.forCreate();
  if (faults.serverError !== undefined) {
    counters.serverErrors += 1;
    return sendProblem(response, serverErrorProblem(faults.serverError));
  }
  if (!body.ok) return sendProblem(response, body.problem);
  if (!isPlainObject(body.value))
    return sendProblem(response, badRequestProblem('The request body must be a JSON object'));
  const wait = parsePreferWait(header(request, 'prefer'));
  if (!wait.ok) return sendProblem(response, wait.problem);
  const cancelAfter = parseCancelAfter(header(request, 'cancel-after'));
  if (!cancelAfter.ok) return sendProblem(response, cancelAfter.problem);
  const model = resolveModel(modelIdFromPath, body.value);
  if (!model.ok) return sendProblem(response, model.problem);
  const webhook = parseWebhook(body.value);
  if (!webhook.ok) return sendProblem(response, webhook.problem);

  const input = body.value.input;
  if (!isPlainObject(input)) {
    counters.validationErrors += 1;
    const problem: InvalidField =
      input === undefined || input === null
        ? { type: 'required', field: '(root)', description: 'input is required' }
        : {
            type: 'invalid_type',
            field: 'input',
            description: `Invalid type. Expected: object, given: ${Array.isArray(input) ? 'array' : typeof input}`,
          };
    return sendProblem(response, inputValidationProblem([problem]));
  }
  // Replicate ignores inputs a model does not declare.
  const validation = validateModelInput(model.value, input, { unknownInputs: 'ignore' });
  if (!validation.ok) {
    counters.validationErrors += 1;
    return sendProblem(response, inputValidationProblem(validation.invalidFields));
  }

  const prediction = engine.create({
    model: model.value,
    input,
    completeInput: validation.input,
    ...(webhook.value.webhook === undefined ? {} : { webhook: webhook.value.webhook }),
    webhookEvents: webhook.value.events,
    ...(cancelAfter.value === undefined ? {} : { cancelAfterMs: cancelAfter.value }),
    failByFault: faults.failPrediction,
  });
  counters.creates += 1;
  context.runCounts.set(model.value.id, (context.runCounts.get(model.value.id) ?? 0) + 1);

  if (faults.resetAfterCreate) {
    // The prediction exists and will run (and bill); the client never learns its id.
    counters.resets += 1;
    return resetConnection(request, response);
  }
  if (wait.value !== undefined) {
    const clientGone = new AbortController();
    response.once('close', () => clientGone.abort());
    await engine.waitUntilDone(prediction, wait.value * 1000, clientGone.signal);
  }
  if (response.destroyed || response.writableEnded) return;
  sendJson(response, 201, engine.json(prediction));
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function listPredictions(context: SimulatorContext, response: ServerResponse, url: URL): void {
  const createdAfterText = url.searchParams.get('created_after');
  const createdBeforeText = url.searchParams.get('created_before');
  const createdAfter = parseTimestamp('created_after', createdAfterText);
  if (!createdAfter.ok) {
    sendProblem(response, createdAfter.problem);
    return;
  }
  const createdBefore = parseTimestamp('created_before', createdBeforeText);
  if (!createdBefore.ok) {
    sendProblem(response, createdBefore.problem);
    return;
  }
  const cursorText = url.searchParams.get('cursor');
  const cursor = cursorText === null ? undefined : decodeCursor(cursorText);
  if (cursorText !== null && cursor === undefined) {
    sendProblem(response, badRequestProblem('Invalid cursor'));
    return;
  }
  const page = context.engine.list({
    ...(createdAfter.value === undefined ? {} : { createdAfter: createdAfter.value }),
    ...(createdBefore.value === undefined ? {} : { createdBefore: createdBefore.value }),
    ...(cursor === undefined ? {} : { cursor }),
  });
  const pageUrl = (next: NonNullable<typeof page.next>): string => {
    const target = new URL(`${context.publicUrl()}/v1/predictions`);
    if (createdAfterText) target.searchParams.set('created_after', createdAfterText);
    if (createdBeforeText) target.searchParams.set('created_before', createdBeforeText);
    target.searchParams.set('cursor', encodeCursor(next));
    return target.toString();
  };
  sendJson(response, 200, {
    next: page.next ? pageUrl(page.next) : null,
    previous: page.previous ? pageUrl(page.previous) : null,
    results: page.results.map((prediction) => context.engine.json(prediction)),
  });
}

function serveFile(context: SimulatorContext, response: ServerResponse, method: string, path: string): void {
  const match = /^\/files\/([^/]+)\/([^/]+)$/.exec(path);
  if (method !== 'GET' && method !== 'HEAD') {
    sendProblem(response, methodNotAllowedProblem(method));
    return;
  }
  const file = match?.[1] && match[2] ? context.files.get(match[1], match[2]) : undefined;
  if (!file) {
    sendProblem(response, notFoundProblem('No such file (outputs are removed at retention)'));
    return;
  }
  response.writeHead(200, {
    'Content-Type': file.contentType,
    'Content-Length': file.servedBytes,
    'Cache-Control': 'private, max-age=3600',
  });
  if (method === 'HEAD' || file.servedBytes === file.bytes.length) {
    response.end(method === 'HEAD' ? undefined : file.bytes);
    return;
  }
  writePadded(response, file.bytes, file.servedBytes);
}

const PADDING_CHUNK = Buffer.alloc(64 * 1024);

/** The image, then zero bytes up to `size`, written as the client reads them: the padding is never held whole. */
function writePadded(response: ServerResponse, bytes: Buffer, size: number): void {
  let left = size - bytes.length;
  const writeMore = (): void => {
    while (left > 0) {
      const chunk = left >= PADDING_CHUNK.length ? PADDING_CHUNK : PADDING_CHUNK.subarray(0, left);
      left -= chunk.length;
      if (!response.write(chunk)) {
        response.once('drain', writeMore);
        return;
      }
    }
    response.end();
  };
  response.once('close', () => {
    left = 0;
  });
  response.write(bytes);
  writeMore();
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

/** The stand-in for replicate.com/p/{id} (`urls.web`): enough to look at one prediction in a browser. */
function serveWebPage(context: SimulatorContext, response: ServerResponse, path: string): void {
  const id = path.slice('/p/'.length);
  const prediction = context.engine.get(id);
  if (!prediction) {
    sendProblem(response, notFoundProblem());
    return;
  }
  const json = escapeHtml(JSON.stringify(context.engine.json(prediction), null, 2));
  const outputs = Array.isArray(prediction.output) ? prediction.output : prediction.output ? [prediction.output] : [];
  const images = outputs.map((src) => `<img src="${escapeHtml(src)}" style="max-width:45%">`).join('');
  const html = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(id)}</title><h1>${escapeHtml(prediction.model.id)}: ${prediction.status}</h1>${images}<pre>${json}</pre>`;
  response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
  response.end(html);
}

const throttleRequestSchema = z.object({
  count: z.number().int().min(0),
  retryAfterSeconds: z.number().int().min(1).default(1),
});

async function handleControl(
  context: SimulatorContext,
  request: IncomingMessage,
  response: ServerResponse,
  method: string,
  path: string,
): Promise<void> {
  if (path === '/_sim/health' && method === 'GET') return sendJson(response, 200, { ok: true });
  if (path === '/_sim/stats' && method === 'GET') return sendJson(response, 200, context.stats());
  if ((path === '/_sim/faults' || path === '/_sim/throttle') && method === 'POST') {
    const body = await readJsonBody(request, 64 * 1024);
    if (!body.ok) return sendProblem(response, body.problem);
    if (path === '/_sim/faults') {
      const changes = faultChangesSchema.safeParse(body.value ?? {});
      if (!changes.success) return sendProblem(response, badRequestProblem(z.prettifyError(changes.error)));
      context.faults.update(changes.data);
      return sendJson(response, 200, { faults: context.faults.current() });
    }
    const throttle = throttleRequestSchema.safeParse(body.value ?? {});
    if (!throttle.success) return sendProblem(response, badRequestProblem(z.prettifyError(throttle.error)));
    context.limiter.throttleNext(throttle.data.count, throttle.data.retryAfterSeconds);
    return sendJson(response, 200, { throttleNext: throttle.data });
  }
  drain(request);
  sendProblem(response, notFoundProblem());
}
