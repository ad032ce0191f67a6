/**
 * The fetch that depthq hands to the official `replicate` client. The client's own retries are broken (see
 * docs/stack-facts.md): no real backoff, `Retry-After` ignored, and a network error on the POST that creates a
 * prediction is re-sent — a duplicate, paid prediction. This transport owns every retry instead:
 *
 * - idempotent requests (GET, and POST …/cancel) are retried on network errors, 5xx and 429 with exponential backoff and
 *   full jitter, never sooner than the server's `retry_after` / `Retry-After`;
 * - a create is sent exactly once: whatever goes wrong surfaces as an error, and the provider reconciles by listing
 *   instead of re-sending blindly;
 * - a failure is thrown as `ProviderHttpError` / `ProviderNetworkError` carrying status, parsed body and headers.
 *
 * The client wraps every fetch in its own retry loop, calling fetch again with the *same* `init` object when fetch throws
 * or answers 429/5xx. So the outcome of the first call is remembered per `init`: the client's repeats get that same
 * outcome at once, without touching the network, and the client's loop becomes harmless.
 */
import { backoffDelayMs, classifyFailure, type ProviderIdentity } from '../core/errors.js';
import { ProviderHttpError, ProviderNetworkError } from './http-errors.js';

export interface RetryPolicy {
  /** Attempts for an idempotent request, the first included. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Per attempt; a create that asks the server to hold (`Prefer: wait=N`) gets N seconds more. */
  readonly requestTimeoutMs: number;
}

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  requestTimeoutMs: 30_000,
};

export interface RetryNotice {
  readonly method: string;
  readonly url: string;
  readonly attempt: number;
  readonly delayMs: number;
  readonly reason: string;
}

/** One answer from the provider (or none: `network`), for telemetry. Retries of one request are one each. */
export interface ResponseNotice {
  readonly method: string;
  /** `create`, `get`, `list`, `cancel` or `other`: what the request was for, never an id. */
  readonly operation: ProviderOperation;
  readonly status: number | 'network';
}

export type ProviderOperation = 'create' | 'get' | 'list' | 'cancel' | 'other';

/** What a request to a Replicate-style API was for, from its method and path (`…/predictions[/<id>[/cancel]]`). */
export function operationOf(method: string, url: URL): ProviderOperation {
  const segments = url.pathname.split('/').filter((segment) => segment !== '');
  const predictions = segments.lastIndexOf('predictions');
  const after = predictions === -1 ? -1 : segments.length - 1 - predictions;
  if (method === 'POST' && after === 0) return 'create';
  if (method === 'POST' && after === 2 && segments.at(-1) === 'cancel') return 'cancel';
  if (method === 'GET' && after === 0) return 'list';
  if (method === 'GET' && after === 1) return 'get';
  return 'other';
}

export interface TransportOptions {
  readonly policy?: Partial<RetryPolicy>;
  readonly fetch?: typeof fetch;
  readonly random?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly now?: () => number;
  readonly onRetry?: (notice: RetryNotice) => void;
  /** Called for every answer of every attempt (429s and network failures included), not for the caller's own aborts. */
  readonly onResponse?: (notice: ResponseNotice) => void;
  /** Named in the retry notices' reasons. */
  readonly provider?: ProviderIdentity;
}

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function headerOf(headers: RequestInit['headers'], name: string): string | undefined {
  if (headers === undefined) return undefined;
  return new Headers(headers).get(name) ?? undefined;
}

function isIdempotent(method: string, url: URL): boolean {
  return method === 'GET' || method === 'HEAD' || (method === 'POST' && url.pathname.endsWith('/cancel'));
}

/** `Prefer: wait=N` holds the response up to N seconds (bare `wait` means 60): the attempt's timeout must allow it. */
function serverHoldMs(init: RequestInit | undefined): number {
  const prefer = headerOf(init?.headers, 'prefer');
  if (prefer === undefined) return 0;
  const match = /\bwait(?:=(\d+))?/.exec(prefer);
  if (!match) return 0;
  return Math.min(60, Number(match[1] ?? 60)) * 1000;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function networkCodeOf(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return error.name;
    const cause = (error as { cause?: unknown }).cause;
    if (cause && typeof cause === 'object' && 'code' in cause && typeof cause.code === 'string') return cause.code;
    if ('code' in error && typeof error.code === 'string') return error.code;
  }
  return 'NETWORK_ERROR';
}

export function createProviderFetch(options: TransportOptions = {}): FetchLike {
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.policy };
  const baseFetch = options.fetch ?? globalThis.fetch;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? abortableSleep;
  const now = options.now ?? Date.now;
  const outcomes = new WeakMap<object, Promise<Response>>();

  async function attempt(url: URL, init: RequestInit | undefined): Promise<Response> {
    const method = (init?.method ?? 'GET').toUpperCase();
    const timeout = AbortSignal.timeout(policy.requestTimeoutMs + serverHoldMs(init));
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await baseFetch(url, { ...init, signal });
    } catch (error) {
      // The caller's own abort is not a network failure: it must stop everything, not be retried.
      if (init?.signal?.aborted) throw init.signal.reason;
      options.onResponse?.({ method, operation: operationOf(method, url), status: 'network' });
      throw new ProviderNetworkError(method, url.toString(), networkCodeOf(error), { cause: error });
    }
    options.onResponse?.({ method, operation: operationOf(method, url), status: response.status });
    if (response.ok) return response;
    const body = await readBody(response);
    throw new ProviderHttpError(method, url.toString(), response.status, body, response.headers.get('retry-after'));
  }

  async function send(url: URL, init: RequestInit | undefined): Promise<Response> {
    const method = (init?.method ?? 'GET').toUpperCase();
    if (!isIdempotent(method, url)) return attempt(url, init);
    for (let attemptNumber = 1; ; attemptNumber++) {
      try {
        return await attempt(url, init);
      } catch (error) {
        if (!(error instanceof ProviderHttpError || error instanceof ProviderNetworkError)) throw error;
        const failure = classifyFailure(
          error instanceof ProviderHttpError
            ? {
                httpStatus: error.status,
                body: error.body,
                retryAfterHeader: error.retryAfterHeader,
                nowMs: now(),
                ...(options.provider ? { provider: options.provider } : {}),
              }
            : { networkErrorCode: error.code, ...(options.provider ? { provider: options.provider } : {}) },
        );
        if (failure.kind === 'fatal' || failure.kind === 'account' || failure.kind === 'flagged') throw error;
        if (attemptNumber >= policy.maxAttempts) throw error;
        const delayMs = backoffDelayMs({
          attempt: attemptNumber,
          baseMs: policy.baseDelayMs,
          capMs: policy.maxDelayMs,
          minimumMs: failure.kind === 'throttled' ? failure.retryAfterMs : 0,
          random,
        });
        options.onRetry?.({ method, url: url.toString(), attempt: attemptNumber, delayMs, reason: failure.reason });
        await sleep(delayMs, init?.signal ?? undefined);
      }
    }
  }

  return (input, init) => {
    const key = init ?? (typeof input === 'object' ? input : undefined);
    const remembered = key === undefined ? undefined : outcomes.get(key);
    if (remembered) return remembered;
    const url = new URL(input instanceof Request ? input.url : input.toString());
    const outcome = send(url, init);
    if (key !== undefined) {
      outcomes.set(key, outcome);
      // Only failures are replayed: a success is returned to the client once and never asked for again.
      outcome.then(
        () => outcomes.delete(key),
        () => undefined,
      );
    }
    return outcome;
  };
}
