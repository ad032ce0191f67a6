/**
 * depthq's error classes and the one pure function that decides what a failure means for a render job.
 *
 * Every failure ends in exactly one of five outcomes, decided by `classifyFailure` from plain data (HTTP status, body,
 * headers, network error code, prediction end state) so the decision is unit-tested without a server:
 * - fatal: retrying this job cannot help (invalid input) → BullMQ `UnrecoverableError`, no attempt wasted;
 * - account: the *account* is refused (401/403 token, 402 credit, 404 model or API gone) → every job would fail the same
 *   way, so the run is paused until a person fixes it and runs `depthq resume`;
 * - transient: a later attempt may succeed → retried (inside the job once a prediction exists, else by BullMQ);
 * - throttled: the *account* is over its rate limit → the whole queue waits `retryAfterMs`, no attempt spent;
 * - flagged: the content filter refused this input and seed → retrying the same request is pointless.
 *
 * Error classes set `name` (matched by `name` as well as `instanceof`, which breaks across module copies) and keep
 * `cause` so the original error survives wrapping.
 *
 * Pure: no I/O, no clock (the current time is passed in as `nowMs`), no environment.
 */

/** The base of every error depthq throws on purpose; anything else reaching a catch block is a bug or a library error. */
export class DepthqError extends Error {
  override readonly name: string = 'DepthqError';
}

/** The configuration (environment, flags) is wrong: start-up stops with this message. */
export class ConfigError extends DepthqError {
  override readonly name: string = 'ConfigError';
}

/** Where in the user's input a problem is: rendered in the message so the user can go straight to it. */
export interface UsageLocation {
  readonly file?: string;
  /** 1-based, as editors count. */
  readonly line?: number;
  /** 1-based, as editors count. */
  readonly column?: number;
  /** A field or column name, e.g. `input.steps` or `prompt`. */
  readonly field?: string;
}

/** One of several problems found at once, so a user fixes a row in one pass instead of one error per run. */
export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

export interface UsageErrorOptions extends ErrorOptions {
  readonly location?: UsageLocation;
  readonly problems?: readonly FieldProblem[];
}

/** `manifest.csv:12:3, field "steps"` — compiler style, which editors and terminals turn into links. */
export function describeLocation(location: UsageLocation): string {
  let where = location.file ?? '';
  if (location.line !== undefined) {
    where += location.file === undefined ? `line ${location.line}` : `:${location.line}`;
    if (location.column !== undefined) where += `:${location.column}`;
  }
  if (location.field !== undefined) where += `${where === '' ? '' : ', '}field "${location.field}"`;
  return where;
}

/** The user asked for something that cannot work (bad manifest value, bad run id, bad flag). Never retried. */
export class UsageError extends DepthqError {
  override readonly name: string = 'UsageError';
  readonly location: UsageLocation | undefined;
  /** The message without the location, for reports that print the location in their own columns. */
  readonly detail: string;
  readonly problems: readonly FieldProblem[];

  constructor(message: string, options: UsageErrorOptions = {}) {
    const where = options.location === undefined ? '' : describeLocation(options.location);
    super(where === '' ? message : `${where}: ${message}`, options.cause === undefined ? {} : { cause: options.cause });
    this.location = options.location;
    this.detail = message;
    this.problems = options.problems ?? [];
  }
}

/**
 * A command-line value is wrong. Every flag parser (src/cli/flags.ts) throws this, in one shape: which flag, what it
 * expects, what it got — `--port must be a whole number from 0 to 65535, got "70000"`.
 */
export class FlagError extends UsageError {
  override readonly name: string = 'FlagError';
  /** The flag or argument as the user writes it, e.g. `--port` or `<usd>`. */
  readonly flag: string;
  readonly got: string;
  /** What the flag takes, completing "must be …", e.g. `a whole number from 0 to 65535`. */
  readonly expected: string;

  constructor(flag: string, got: string, expected: string, options: ErrorOptions = {}) {
    super(`${flag} must be ${expected}, got "${got}"`, options);
    this.flag = flag;
    this.got = got;
    this.expected = expected;
  }
}

/** Said in words because a regular expression is not an explanation. */
export const RUN_ID_RULE =
  "1–64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit";

/** Run ids become parts of job ids, Redis keys and S3 keys, so they are restricted; the message says how. */
export class InvalidRunIdError extends UsageError {
  override readonly name: string = 'InvalidRunIdError';
  readonly value: string;

  constructor(value: string, options: UsageErrorOptions = {}) {
    super(`${JSON.stringify(value)} is not a valid run id: use ${RUN_ID_RULE}`, options);
    this.value = value;
  }
}

export interface InvalidObjectKeyErrorOptions extends UsageErrorOptions {
  /** What was checked, for the message: `object key` (the default), `output key prefix`, `value of {id}` … */
  readonly what?: string;
}

/** An S3 object key (or prefix) that could escape its prefix or that S3 and file systems treat differently. */
export class InvalidObjectKeyError extends UsageError {
  override readonly name: string = 'InvalidObjectKeyError';
  readonly key: string;
  /** Why the key is refused, without the key itself. */
  readonly problem: string;

  constructor(key: string, problem: string, options: InvalidObjectKeyErrorOptions = {}) {
    super(`${options.what ?? 'object key'} ${JSON.stringify(key)} is not allowed: ${problem}`, options);
    this.key = key;
    this.problem = problem;
  }
}

/** Retrying this job cannot help: the processor turns it into BullMQ's `UnrecoverableError`. */
export class FatalJobError extends DepthqError {
  override readonly name: string = 'FatalJobError';
}

/** A later attempt may succeed: BullMQ retries with backoff. */
export class TransientJobError extends DepthqError {
  override readonly name: string = 'TransientJobError';
}

/** The content filter refused the input or output (Replicate E005). Same input and seed would be refused again. */
export class FlaggedError extends DepthqError {
  override readonly name: string = 'FlaggedError';
}

/**
 * The prediction's output is gone (Replicate deletes outputs an hour after creation) before it was copied to S3. The
 * image was paid for; only a new prediction can produce it again, so the caller decides whether to pay twice.
 */
export class OutputExpiredError extends DepthqError {
  override readonly name: string = 'OutputExpiredError';
}

/**
 * Turns whatever a catch block caught into an Error with a useful message (graphile-worker's `coerceError`): libraries
 * and user code throw strings, plain objects and RFC 7807 bodies too. The original value is kept as `cause`.
 */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown === '' ? 'An empty string was thrown' : thrown);
  if (typeof thrown === 'object' && thrown !== null) {
    for (const property of ['message', 'detail', 'error'] as const) {
      const text: unknown = Reflect.get(thrown, property);
      if (typeof text === 'string' && text !== '') return new Error(text, { cause: thrown });
    }
    return new Error(`A non-error object was thrown: ${safeJson(thrown)}`, { cause: thrown });
  }
  return new Error(`A non-error value was thrown: ${String(thrown)}`, { cause: thrown });
}

function safeJson(value: unknown): string {
  try {
    return truncate(JSON.stringify(value) ?? String(value), 500);
  } catch {
    // Circular structures and BigInts cannot be serialised; the type is still better than nothing.
    return Object.prototype.toString.call(value);
  }
}

function truncate(text: string, maxLength: number): string {
  return text.length <= maxLength ? text : `${text.slice(0, maxLength - 1)}…`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Failure classification
// ---------------------------------------------------------------------------------------------------------------------

/** Everything known about one failed call or prediction; every field is optional because failures come from anywhere. */
export interface FailureFacts {
  readonly httpStatus?: number;
  /** The parsed JSON body (RFC 7807 for Replicate errors) or its raw text. */
  readonly body?: unknown;
  readonly retryAfterHeader?: string | null;
  /** `error.code` of a Node/undici network error (`ECONNRESET`, `UND_ERR_SOCKET` …) or its `name` (`AbortError`). */
  readonly networkErrorCode?: string;
  /** The end state of a prediction: `failed`, `canceled`, `aborted` … */
  readonly predictionStatus?: string;
  readonly predictionError?: string | null;
  /** The current time, needed only to turn a `Retry-After` HTTP-date into a delay. */
  readonly nowMs?: number;
  /** Who answered: named in the reason, with where to fix an account problem. A neutral name when absent. */
  readonly provider?: ProviderIdentity;
}

/** A model API as failure messages name it (each provider adapter exports its own, e.g. `replicateIdentity`). */
export interface ProviderIdentity {
  /** As a sentence starts with it: `Replicate`. */
  readonly name: string;
  /** The setting that holds the API token, e.g. `REPLICATE_API_TOKEN`. */
  readonly tokenSetting: string;
  /** The setting that holds the API's URL, e.g. `REPLICATE_BASE_URL`. */
  readonly baseUrlSetting: string;
  /** Where credit is added, when the provider has such a page. */
  readonly billingUrl?: string;
}

const unnamedProvider: ProviderIdentity = {
  name: 'The model API',
  tokenSetting: "the provider's API token",
  baseUrlSetting: "the provider's API URL",
};

export type FailureClass =
  | { readonly kind: 'fatal'; readonly reason: string }
  /** Every request of the account fails the same way until a person acts; `reason` says what to fix. */
  | { readonly kind: 'account'; readonly httpStatus: number; readonly reason: string }
  | { readonly kind: 'transient'; readonly reason: string }
  | { readonly kind: 'throttled'; readonly retryAfterMs: number; readonly reason: string }
  | { readonly kind: 'flagged'; readonly reason: string };

/** When a 429 says nothing about how long to wait. */
export const DEFAULT_THROTTLE_MS = 10_000;
/** Waiting less than a second just earns another 429. */
export const MIN_THROTTLE_MS = 1_000;
/** A header or body asking for more than ten minutes is more likely a bug than a plan: wait, then ask again. */
export const MAX_THROTTLE_MS = 600_000;

/**
 * Network error codes that mean "the request may not have arrived or the answer was lost": retry later. A lost answer to
 * a create is why the pipeline reconciles by listing predictions before creating again; that is not decided here.
 */
export const TRANSIENT_NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'AbortError',
  'TimeoutError',
]);

/**
 * Replicate's content filter: "The input or output was flagged as sensitive. Please try again with different inputs.
 * (E005)". flux-depth-dev's own safety checker fails with "All generated images contained NSFW content …".
 */
const flaggedPatterns: readonly RegExp[] = [/\(E005\)/, /flagged as sensitive/i, /NSFW content/i];

/** Decides what a failure means for the job. One function, plain data in, plain data out. */
export function classifyFailure(facts: FailureFacts): FailureClass {
  const status = facts.httpStatus;
  if (status !== undefined && (status < 200 || status >= 300)) return classifyHttpStatus(status, facts);
  if (facts.networkErrorCode !== undefined) return classifyNetworkError(facts.networkErrorCode, facts.provider);
  if (facts.predictionStatus !== undefined) return classifyPrediction(facts.predictionStatus, facts.predictionError);
  return { kind: 'transient', reason: 'The failure carried no status, error code or prediction state; retrying.' };
}

function classifyHttpStatus(status: number, facts: FailureFacts): FailureClass {
  const provider = facts.provider ?? unnamedProvider;
  const name = provider.name;
  const detail = detailOf(facts.body);
  const said = detail === undefined ? '' : `: ${detail}`;
  if (status === 429) {
    const retryAfterMs = throttleDelayMs(facts);
    return {
      kind: 'throttled',
      retryAfterMs,
      reason: `${name} throttled the request (HTTP 429)${said}; the queue waits ${formatSeconds(retryAfterMs)}.`,
    };
  }
  // Account-level answers: the same for every job, so failing jobs one by one would only spend their attempts.
  if (status === 401 || status === 403) {
    return {
      kind: 'account',
      httpStatus: status,
      reason:
        `${name} refused the API token (HTTP ${status})${said}; ` +
        `set a valid ${provider.tokenSetting} for the workers and restart them.`,
    };
  }
  if (status === 402) {
    return {
      kind: 'account',
      httpStatus: status,
      reason:
        `${name} refused for lack of credit (HTTP 402)${said}; ` +
        `add credit${provider.billingUrl === undefined ? ` to the ${name} account` : ` at ${provider.billingUrl}`}.`,
    };
  }
  if (status === 404) {
    // Predictions depthq made never 404 for the account that made them: the model, the API URL or the account changed.
    return {
      kind: 'account',
      httpStatus: status,
      reason:
        `${name} answered HTTP 404${said}; ` +
        `check the run's model still exists on ${name}, ${provider.baseUrlSetting} and ${provider.tokenSetting}.`,
    };
  }
  if (status === 422) {
    return { kind: 'fatal', reason: `${name} rejected the input (HTTP 422)${said || invalidFieldsOf(facts.body)}.` };
  }
  // Replicate has answered a request timeout, a conflict and "too early" for requests that work when repeated.
  if (status === 408 || status === 409 || status === 425 || (status >= 500 && status <= 599)) {
    return { kind: 'transient', reason: `${name} answered HTTP ${status}${said}; retrying later.` };
  }
  if (status >= 400 && status <= 499) {
    // 400 and the other client errors are this request's own: the job fails, the run goes on.
    return { kind: 'fatal', reason: `${name} refused the request (HTTP ${status})${said}.` };
  }
  return { kind: 'transient', reason: `Unexpected HTTP status ${status}${said}; retrying later.` };
}

function classifyNetworkError(code: string, provider: ProviderIdentity = unnamedProvider): FailureClass {
  return TRANSIENT_NETWORK_CODES.has(code)
    ? {
        kind: 'transient',
        reason: `The connection to ${provider === unnamedProvider ? 'the model API' : provider.name} failed (${code}); retrying later.`,
      }
    : { kind: 'transient', reason: `An unrecognised network error occurred (${code}); retrying later.` };
}

function classifyPrediction(status: string, error: string | null | undefined): FailureClass {
  const errorText = error ?? undefined;
  if (status === 'failed') {
    if (errorText !== undefined && flaggedPatterns.some((pattern) => pattern.test(errorText))) {
      return { kind: 'flagged', reason: errorText };
    }
    return {
      kind: 'transient',
      reason: `The prediction failed${errorText === undefined ? '' : `: ${errorText}`}; a new prediction will be made.`,
    };
  }
  if (status === 'canceled' || status === 'aborted') {
    // Nobody cancels a depthq prediction on purpose except the `Cancel-After` deadline (queue too long) or an operator;
    // a job that is still wanted gets a new prediction on its next attempt. A cancelled run stops its jobs elsewhere.
    return {
      kind: 'transient',
      reason: `The prediction was ${status} before it finished; a new prediction will be made on retry.`,
    };
  }
  return { kind: 'transient', reason: `The prediction ended in an unexpected state "${status}"; retrying.` };
}

/** The human part of an error body: RFC 7807 `detail`, else `title`/`error`/`message`, else raw text. */
export function detailOf(body: unknown): string | undefined {
  if (typeof body === 'string') return body.trim() === '' ? undefined : truncate(body.trim(), 500);
  if (typeof body !== 'object' || body === null) return undefined;
  for (const property of ['detail', 'title', 'error', 'message']) {
    const value: unknown = Reflect.get(body, property);
    if (typeof value === 'string' && value.trim() !== '') return truncate(value.trim(), 500);
  }
  return undefined;
}

function invalidFieldsOf(body: unknown): string {
  if (typeof body !== 'object' || body === null) return '';
  const fields: unknown = Reflect.get(body, 'invalid_fields');
  if (!Array.isArray(fields)) return '';
  const names = fields.map((entry: unknown) =>
    typeof entry === 'object' && entry !== null ? String(Reflect.get(entry, 'field')) : String(entry),
  );
  return names.length === 0 ? '' : `: invalid ${names.join(', ')}`;
}

/**
 * How long a 429 asks us to wait. Replicate's newer bodies carry `retry_after` (seconds, possibly fractional); whether a
 * `Retry-After` header is sent is unconfirmed, so both are read and the longer one wins (waiting too little costs
 * another 429). Older bodies only say "resets in ~30s" in `detail`.
 */
export function throttleDelayMs(facts: FailureFacts): number {
  const fromBody = bodyRetryAfterMs(facts.body);
  const fromHeader = headerRetryAfterMs(facts.retryAfterHeader, facts.nowMs);
  let delay: number | undefined;
  if (fromBody !== undefined || fromHeader !== undefined) delay = Math.max(fromBody ?? 0, fromHeader ?? 0);
  else delay = detailRetryAfterMs(detailOf(facts.body)) ?? DEFAULT_THROTTLE_MS;
  return Math.min(MAX_THROTTLE_MS, Math.max(MIN_THROTTLE_MS, Math.ceil(delay)));
}

const decimalSeconds = /^\s*(\d+(?:\.\d+)?)\s*$/;

function bodyRetryAfterMs(body: unknown): number | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const value: unknown = Reflect.get(body, 'retry_after');
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000;
  if (typeof value === 'string') {
    const match = decimalSeconds.exec(value);
    if (match?.[1] !== undefined) return Number(match[1]) * 1000;
  }
  return undefined;
}

/** `Retry-After` is delta-seconds or an HTTP-date (RFC 9110 §10.2.3); a date needs `nowMs` to become a delay. */
function headerRetryAfterMs(header: string | null | undefined, nowMs: number | undefined): number | undefined {
  if (header === null || header === undefined || header.trim() === '') return undefined;
  const seconds = decimalSeconds.exec(header);
  if (seconds?.[1] !== undefined) return Number(seconds[1]) * 1000;
  const date = Date.parse(header);
  if (Number.isNaN(date) || nowMs === undefined) return undefined;
  return Math.max(0, date - nowMs);
}

const resetsIn = /resets in\s*~?\s*(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?)\b/i;

function detailRetryAfterMs(detail: string | undefined): number | undefined {
  if (detail === undefined) return undefined;
  const match = resetsIn.exec(detail);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  const amount = Number(match[1]);
  const unit = match[2].toLowerCase();
  if (unit.startsWith('ms') || unit.startsWith('milli')) return amount;
  if (unit.startsWith('m')) return amount * 60_000;
  return amount * 1000;
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------------------------------------

export interface BackoffOptions {
  /** How many attempts have been made so far, counting the one that just failed: 1 after the first failure. */
  readonly attempt: number;
  /** The ceiling of the first retry's delay. */
  readonly baseMs: number;
  /** No delay's random part exceeds this, however many attempts were made. */
  readonly capMs: number;
  /** A wait the server asked for (a throttle's `retryAfterMs`); the jitter is added on top of it. */
  readonly minimumMs?: number;
  /** A number in [0, 1), e.g. `Math.random`; injected so the delay is a pure function of its inputs. */
  readonly random: () => number;
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * `minimumMs + random × min(capMs, baseMs × 2^(attempt − 1))`. Full jitter spreads a fleet of workers that failed
 * together over the whole window, so they do not come back together and fail together again. A minimum the server asked
 * for is honoured in full and the jitter goes on top, for the same reason.
 */
export function backoffDelayMs(options: BackoffOptions): number {
  const { attempt, baseMs, capMs, minimumMs = 0, random } = options;
  if (!Number.isSafeInteger(attempt) || attempt < 1) {
    throw new RangeError(`attempt must be a whole number ≥ 1, got ${attempt}`);
  }
  if (!Number.isFinite(baseMs) || baseMs <= 0) throw new RangeError(`baseMs must be a number > 0, got ${baseMs}`);
  if (!Number.isFinite(capMs) || capMs < baseMs) throw new RangeError(`capMs must be ≥ baseMs, got ${capMs}`);
  if (!Number.isFinite(minimumMs) || minimumMs < 0) {
    throw new RangeError(`minimumMs must be a number ≥ 0, got ${minimumMs}`);
  }
  // 2 ** 1100 is Infinity, which Math.min turns into capMs: no overflow however many attempts.
  const ceiling = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  const fraction = random();
  if (!(fraction >= 0 && fraction < 1))
    throw new RangeError(`random() must return a number in [0, 1), got ${fraction}`);
  return Math.ceil(minimumMs) + Math.floor(fraction * ceiling);
}
