import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  ConfigError,
  classifyFailure,
  coerceError,
  DEFAULT_THROTTLE_MS,
  DepthqError,
  describeLocation,
  type FailureClass,
  FatalJobError,
  FlaggedError,
  InvalidObjectKeyError,
  InvalidRunIdError,
  MAX_THROTTLE_MS,
  MIN_THROTTLE_MS,
  OutputExpiredError,
  RUN_ID_RULE,
  TransientJobError,
  throttleDelayMs,
  UsageError,
} from '../../src/core/errors.js';
import { replicateIdentity } from '../../src/providers/replicate.js';

const e005 =
  'The input or output was flagged as sensitive. Please try again with different inputs. (E005) (request id: ab12)';

function throttled(failure: FailureClass): number {
  if (failure.kind !== 'throttled') throw new Error(`expected throttled, got ${JSON.stringify(failure)}`);
  return failure.retryAfterMs;
}

describe('error classes', () => {
  it.each([
    ['DepthqError', () => new DepthqError('m')],
    ['ConfigError', () => new ConfigError('m')],
    ['UsageError', () => new UsageError('m')],
    ['InvalidRunIdError', () => new InvalidRunIdError('Bad')],
    ['InvalidObjectKeyError', () => new InvalidObjectKeyError('../x', 'it climbs')],
    ['FatalJobError', () => new FatalJobError('m')],
    ['TransientJobError', () => new TransientJobError('m')],
    ['FlaggedError', () => new FlaggedError('m')],
    ['OutputExpiredError', () => new OutputExpiredError('m')],
  ])('%s sets its name and is a DepthqError and an Error', (name, make) => {
    const error = make();
    expect(error.name).toBe(name);
    expect(error).toBeInstanceOf(DepthqError);
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(new RegExp(`^${name}: `));
  });

  it('keeps the cause', () => {
    const cause = new Error('socket hang up');
    expect(new TransientJobError('retry', { cause }).cause).toBe(cause);
    expect(new UsageError('bad', { cause }).cause).toBe(cause);
    expect(new InvalidObjectKeyError('k', 'p', { cause }).cause).toBe(cause);
    expect(new UsageError('bad')).not.toHaveProperty('cause');
  });

  it('run-id and object-key errors are usage errors (user-caused, never retried)', () => {
    expect(new InvalidRunIdError('X')).toBeInstanceOf(UsageError);
    expect(new InvalidObjectKeyError('k', 'p')).toBeInstanceOf(UsageError);
    expect(new FatalJobError('x')).not.toBeInstanceOf(UsageError);
  });

  it('InvalidRunIdError quotes the value and says the rule in words', () => {
    const error = new InvalidRunIdError('My Run');
    expect(error.value).toBe('My Run');
    expect(error.message).toBe(
      `"My Run" is not a valid run id: use 1–64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
    expect(RUN_ID_RULE).toContain('1–64 characters');
  });

  it('InvalidObjectKeyError names what was checked, quotes the key and keeps the problem apart', () => {
    const error = new InvalidObjectKeyError('a\nb', 'it contains the control character U+000A', {
      what: 'output key prefix',
    });
    expect(error.message).toBe('output key prefix "a\\nb" is not allowed: it contains the control character U+000A');
    expect(error.key).toBe('a\nb');
    expect(error.problem).toBe('it contains the control character U+000A');
    expect(new InvalidObjectKeyError('k', 'p').message).toBe('object key "k" is not allowed: p');
  });
});

describe('UsageError locations', () => {
  it('renders file, line, column and field compiler-style before the message', () => {
    const error = new UsageError('must be ≤ 50', {
      location: { file: 'manifest.csv', line: 12, column: 3, field: 'steps' },
    });
    expect(error.message).toBe('manifest.csv:12:3, field "steps": must be ≤ 50');
    expect(error.detail).toBe('must be ≤ 50');
    expect(error.location).toEqual({ file: 'manifest.csv', line: 12, column: 3, field: 'steps' });
  });

  it('renders partial locations', () => {
    expect(describeLocation({ file: 'm.csv' })).toBe('m.csv');
    expect(describeLocation({ file: 'm.csv', line: 4 })).toBe('m.csv:4');
    expect(describeLocation({ line: 4 })).toBe('line 4');
    expect(describeLocation({ line: 4, column: 2 })).toBe('line 4:2');
    expect(describeLocation({ field: 'prompt' })).toBe('field "prompt"');
    expect(describeLocation({ file: 'm.csv', column: 9 })).toBe('m.csv');
    expect(describeLocation({})).toBe('');
    expect(new UsageError('x', { location: {} }).message).toBe('x');
    expect(new UsageError('x', { location: { field: 'seed' } }).message).toBe('field "seed": x');
  });

  it('has no location and no problems unless given', () => {
    const error = new UsageError('plain');
    expect(error.message).toBe('plain');
    expect(error.location).toBeUndefined();
    expect(error.problems).toEqual([]);
  });

  it('carries structured problems', () => {
    const problems = [{ field: 'input.steps', message: 'too high' }];
    expect(new UsageError('1 problem', { problems }).problems).toEqual(problems);
  });
});

describe('coerceError', () => {
  it('returns errors unchanged', () => {
    const error = new TypeError('x');
    expect(coerceError(error)).toBe(error);
  });

  it('turns a thrown string into an Error with that message', () => {
    const error = coerceError('boom');
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe('boom');
    expect(coerceError('').message).toBe('An empty string was thrown');
  });

  it('uses message, detail or error of a thrown object and keeps the object as cause', () => {
    const thrown = { message: 'from object', code: 'E1' };
    const error = coerceError(thrown);
    expect(error.message).toBe('from object');
    expect(error.cause).toBe(thrown);
    expect(coerceError({ detail: 'Request was throttled.', status: 429 }).message).toBe('Request was throttled.');
    expect(coerceError({ error: 'bad' }).message).toBe('bad');
  });

  it('serialises other objects, and survives circular ones', () => {
    expect(coerceError({ status: 500 }).message).toBe('A non-error object was thrown: {"status":500}');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(coerceError(circular).message).toBe('A non-error object was thrown: [object Object]');
    expect(coerceError({ big: 1n }).message).toBe('A non-error object was thrown: [object Object]');
  });

  it('describes primitives', () => {
    expect(coerceError(undefined).message).toBe('A non-error value was thrown: undefined');
    expect(coerceError(null).message).toBe('A non-error value was thrown: null');
    expect(coerceError(42).message).toBe('A non-error value was thrown: 42');
    expect(coerceError(undefined).cause).toBeUndefined();
  });

  it('truncates huge objects', () => {
    expect(coerceError({ text: 'x'.repeat(5000) }).message.length).toBeLessThan(600);
  });
});

describe('classifyFailure: HTTP statuses', () => {
  it.each([401, 403])('%d is an account problem and says to fix REPLICATE_API_TOKEN', (httpStatus) => {
    const failure = classifyFailure({ provider: replicateIdentity, httpStatus, body: { detail: 'Unauthenticated' } });
    expect(failure).toMatchObject({ kind: 'account', httpStatus });
    expect(failure.reason).toContain('REPLICATE_API_TOKEN');
    expect(failure.reason).toContain('Unauthenticated');
    expect(failure.reason).toContain(String(httpStatus));
  });

  it('402 is an account problem and says to add credit', () => {
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 402,
      body: { detail: 'You have insufficient credit' },
    });
    expect(failure).toEqual({
      kind: 'account',
      httpStatus: 402,
      reason:
        'Replicate refused for lack of credit (HTTP 402): You have insufficient credit; ' +
        'add credit at https://replicate.com/account/billing.',
    });
  });

  it('404 is an account problem: the model, the API URL or the token changed', () => {
    const failure = classifyFailure({ provider: replicateIdentity, httpStatus: 404, body: { detail: 'Not found.' } });
    expect(failure).toEqual({
      kind: 'account',
      httpStatus: 404,
      reason:
        "Replicate answered HTTP 404: Not found.; check the run's model still exists on Replicate, " +
        'REPLICATE_BASE_URL and REPLICATE_API_TOKEN.',
    });
  });

  it('422 is fatal and includes the detail', () => {
    const body = {
      detail: '- input.output_format: output_format must be one of the following: "jpg", "png"\n',
      status: 422,
      title: 'Input validation failed',
      invalid_fields: [{ type: 'enum', field: 'input.output_format', description: '…' }],
    };
    const failure = classifyFailure({ provider: replicateIdentity, httpStatus: 422, body });
    expect(failure.kind).toBe('fatal');
    expect(failure.reason).toContain('output_format must be one of the following: "jpg", "png"');
  });

  it('422 without a detail names the invalid fields', () => {
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 422,
      body: { invalid_fields: [{ field: 'input.steps' }] },
    });
    expect(failure).toEqual({ kind: 'fatal', reason: 'Replicate rejected the input (HTTP 422): invalid input.steps.' });
  });

  it('400 is fatal: the request is wrong, not the account', () => {
    expect(classifyFailure({ provider: replicateIdentity, httpStatus: 400, body: 'bad json' })).toEqual({
      kind: 'fatal',
      reason: 'Replicate refused the request (HTTP 400): bad json.',
    });
  });

  it.each([408, 409, 425, 500, 502, 503, 504, 599])('%d is transient', (httpStatus) => {
    const failure = classifyFailure({ provider: replicateIdentity, httpStatus, body: { detail: 'upstream' } });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain(`HTTP ${httpStatus}`);
  });

  it('a 2xx status defers to the prediction state', () => {
    expect(
      classifyFailure({
        provider: replicateIdentity,
        httpStatus: 200,
        predictionStatus: 'failed',
        predictionError: e005,
      }).kind,
    ).toBe('flagged');
    expect(
      classifyFailure({
        provider: replicateIdentity,
        httpStatus: 201,
        predictionStatus: 'failed',
        predictionError: 'CUDA OOM',
      }).kind,
    ).toBe('transient');
  });

  it('odd statuses are transient with a reason', () => {
    const failure = classifyFailure({ provider: replicateIdentity, httpStatus: 302 });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain('302');
  });

  it('the status wins over a network code or prediction state', () => {
    expect(
      classifyFailure({
        provider: replicateIdentity,
        httpStatus: 401,
        networkErrorCode: 'ECONNRESET',
        predictionStatus: 'failed',
      }).kind,
    ).toBe('account');
  });
});

describe('classifyFailure: 429 throttling', () => {
  it('uses the body retry_after (seconds)', () => {
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 429,
      body: { detail: 'Request was throttled. Your rate limit resets in ~30s.', status: 429, retry_after: 5 },
    });
    expect(failure.kind).toBe('throttled');
    expect(throttled(failure)).toBe(5000);
    expect(failure.reason).toContain('Request was throttled');
    expect(failure.reason).toContain('5 s');
  });

  it('takes a fractional retry_after', () => {
    expect(
      throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { retry_after: 2.5 } })),
    ).toBe(2500);
    expect(
      throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { retry_after: '7.25' } })),
    ).toBe(7250);
  });

  it('uses a delta-seconds Retry-After header', () => {
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, retryAfterHeader: '12' }))).toBe(
      12_000,
    );
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, retryAfterHeader: ' 3 ' }))).toBe(
      3000,
    );
  });

  it('uses an HTTP-date Retry-After header relative to nowMs', () => {
    const nowMs = Date.parse('2026-03-01T12:00:00Z');
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 429,
      retryAfterHeader: 'Sun, 01 Mar 2026 12:00:45 GMT',
      nowMs,
    });
    expect(throttled(failure)).toBe(45_000);
  });

  it('ignores an HTTP-date without nowMs (no clock in the core) and falls back', () => {
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 429,
      retryAfterHeader: 'Sun, 01 Mar 2026 12:00:45 GMT',
    });
    expect(throttled(failure)).toBe(DEFAULT_THROTTLE_MS);
  });

  it('clamps an HTTP-date in the past to the minimum', () => {
    const nowMs = Date.parse('2026-03-01T12:00:00Z');
    const failure = classifyFailure({
      provider: replicateIdentity,
      httpStatus: 429,
      retryAfterHeader: 'Sun, 01 Mar 2026 11:00:00 GMT',
      nowMs,
    });
    expect(throttled(failure)).toBe(MIN_THROTTLE_MS);
  });

  it('takes the larger of body and header', () => {
    expect(
      throttled(
        classifyFailure({
          provider: replicateIdentity,
          httpStatus: 429,
          body: { retry_after: 5 },
          retryAfterHeader: '20',
        }),
      ),
    ).toBe(20_000);
    expect(
      throttled(
        classifyFailure({
          provider: replicateIdentity,
          httpStatus: 429,
          body: { retry_after: 25 },
          retryAfterHeader: '20',
        }),
      ),
    ).toBe(25_000);
  });

  it('falls back to "resets in ~30s" in the detail', () => {
    const body = { detail: 'Request was throttled. Your rate limit resets in ~30s.', status: 429 };
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body }))).toBe(30_000);
    expect(
      throttled(
        classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: 'Your rate limit resets in ~2m.' }),
      ),
    ).toBe(120_000);
    expect(
      throttled(
        classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { detail: 'resets in 1.5 seconds' } }),
      ),
    ).toBe(1500);
  });

  it('prefers retry_after over the detail text', () => {
    const body = { detail: 'Your rate limit resets in ~30s.', retry_after: 4 };
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body }))).toBe(4000);
  });

  it('defaults to 10 s when nothing says how long', () => {
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429 }))).toBe(10_000);
    expect(
      throttled(
        classifyFailure({
          provider: replicateIdentity,
          httpStatus: 429,
          body: { detail: 'slow down' },
          retryAfterHeader: null,
        }),
      ),
    ).toBe(10_000);
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, retryAfterHeader: 'soon' }))).toBe(
      10_000,
    );
    expect(
      throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { retry_after: -3 } })),
    ).toBe(10_000);
  });

  it('clamps to [1 s, 10 min]', () => {
    expect(throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { retry_after: 0 } }))).toBe(
      1000,
    );
    expect(
      throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, body: { retry_after: 0.2 } })),
    ).toBe(1000);
    expect(
      throttled(classifyFailure({ provider: replicateIdentity, httpStatus: 429, retryAfterHeader: '86400' })),
    ).toBe(MAX_THROTTLE_MS);
    expect(MAX_THROTTLE_MS).toBe(600_000);
  });

  it('rounds up to whole milliseconds', () => {
    expect(throttleDelayMs({ body: { retry_after: 1.0005 } })).toBe(1001);
  });
});

describe('classifyFailure: network errors', () => {
  it.each([
    'ECONNRESET',
    'ECONNREFUSED',
    'ETIMEDOUT',
    'EPIPE',
    'UND_ERR_SOCKET',
    'EAI_AGAIN',
    'AbortError',
    'TimeoutError',
  ])('%s is transient', (networkErrorCode) => {
    const failure = classifyFailure({ provider: replicateIdentity, networkErrorCode });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain(networkErrorCode);
    expect(failure.reason).toContain('connection to Replicate failed');
  });

  it('names the provider it comes from, and a neutral one when none is given', () => {
    const other = { name: 'BFL', tokenSetting: 'BFL_API_KEY', baseUrlSetting: 'BFL_BASE_URL' };
    expect(classifyFailure({ provider: other, networkErrorCode: 'ECONNRESET' }).reason).toContain(
      'connection to BFL failed',
    );
    expect(classifyFailure({ provider: other, httpStatus: 402 }).reason).toBe(
      'BFL refused for lack of credit (HTTP 402); add credit to the BFL account.',
    );
    expect(classifyFailure({ provider: other, httpStatus: 401 }).reason).toContain('set a valid BFL_API_KEY');
    expect(classifyFailure({ httpStatus: 422 }).reason).toBe('The model API rejected the input (HTTP 422).');
    expect(classifyFailure({ networkErrorCode: 'ECONNRESET' }).reason).toContain('connection to the model API failed');
  });

  it('an unknown network code is transient too, and says it is unrecognised', () => {
    const failure = classifyFailure({ provider: replicateIdentity, networkErrorCode: 'EWEIRD' });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain('unrecognised');
  });
});

describe('classifyFailure: prediction end states', () => {
  it('E005 is flagged, with the error text as the reason', () => {
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed', predictionError: e005 })).toEqual(
      {
        kind: 'flagged',
        reason: e005,
      },
    );
  });

  it('"flagged as sensitive" without a code is flagged', () => {
    const predictionError = 'The output was flagged as sensitive.';
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed', predictionError }).kind).toBe(
      'flagged',
    );
  });

  it("flux-depth-dev's NSFW refusal is flagged", () => {
    const predictionError =
      'All generated images contained NSFW content. Try running it again with a different prompt.';
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed', predictionError }).kind).toBe(
      'flagged',
    );
  });

  it("flux-depth-dev's exact refusal on Replicate is flagged, with the text as the reason", () => {
    const predictionError = 'NSFW content detected. Try running it again, or try a different prompt.';
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed', predictionError })).toEqual({
      kind: 'flagged',
      reason: predictionError,
    });
  });

  it('other failures are transient and quote the error', () => {
    const failure = classifyFailure({
      provider: replicateIdentity,
      predictionStatus: 'failed',
      predictionError: 'CUDA out of memory',
    });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain('CUDA out of memory');
    expect(
      classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed', predictionError: null }).kind,
    ).toBe('transient');
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'failed' }).reason).toBe(
      'The prediction failed; a new prediction will be made.',
    );
  });

  it('E005 only counts on a failed prediction', () => {
    expect(
      classifyFailure({ provider: replicateIdentity, predictionStatus: 'canceled', predictionError: e005 }).kind,
    ).toBe('transient');
  });

  it.each(['canceled', 'aborted'])('%s is transient (a new prediction on retry)', (predictionStatus) => {
    const failure = classifyFailure({ provider: replicateIdentity, predictionStatus });
    expect(failure.kind).toBe('transient');
    expect(failure.reason).toContain(predictionStatus);
    expect(failure.reason).toContain('new prediction');
  });

  it('an unexpected state is transient with a reason', () => {
    expect(classifyFailure({ provider: replicateIdentity, predictionStatus: 'exploded' })).toEqual({
      kind: 'transient',
      reason: 'The prediction ended in an unexpected state "exploded"; retrying.',
    });
  });

  it('no facts at all is transient with a reason', () => {
    const failure = classifyFailure({});
    expect(failure.kind).toBe('transient');
    expect(failure.reason.length).toBeGreaterThan(10);
  });
});

describe('backoffDelayMs (full jitter)', () => {
  const limits = { baseMs: 1000, capMs: 60_000 };

  it('is 0 with random() = 0 and just under the ceiling with random() → 1', () => {
    expect(backoffDelayMs({ attempt: 1, ...limits, random: () => 0 })).toBe(0);
    expect(backoffDelayMs({ attempt: 1, ...limits, random: () => 0.999999 })).toBe(999);
  });

  it('doubles the ceiling with every attempt', () => {
    const half = (attempt: number): number => backoffDelayMs({ attempt, ...limits, random: () => 0.5 });
    expect([1, 2, 3, 4, 5].map(half)).toEqual([500, 1000, 2000, 4000, 8000]);
  });

  it('never lets the ceiling pass capMs, however many attempts', () => {
    expect(backoffDelayMs({ attempt: 7, ...limits, random: () => 0.5 })).toBe(30_000);
    expect(backoffDelayMs({ attempt: 50, ...limits, random: () => 0.5 })).toBe(30_000);
    expect(backoffDelayMs({ attempt: 5000, ...limits, random: () => 0.999 })).toBe(59_940);
  });

  it('stays within [0, ceiling) for many random values', () => {
    for (let attempt = 1; attempt <= 12; attempt++) {
      const ceiling = Math.min(limits.capMs, limits.baseMs * 2 ** (attempt - 1));
      for (const fraction of [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999]) {
        const delay = backoffDelayMs({ attempt, ...limits, random: () => fraction });
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(ceiling);
        expect(Number.isInteger(delay)).toBe(true);
      }
    }
  });

  it('honours a minimum in full and adds the jitter on top', () => {
    expect(backoffDelayMs({ attempt: 1, ...limits, minimumMs: 30_000, random: () => 0 })).toBe(30_000);
    expect(backoffDelayMs({ attempt: 2, ...limits, minimumMs: 30_000, random: () => 0.5 })).toBe(31_000);
    expect(backoffDelayMs({ attempt: 1, ...limits, minimumMs: 1500.2, random: () => 0 })).toBe(1501);
  });

  it('refuses nonsense options', () => {
    const random = (): number => 0.5;
    expect(() => backoffDelayMs({ attempt: 0, ...limits, random })).toThrow(/attempt/);
    expect(() => backoffDelayMs({ attempt: 1.5, ...limits, random })).toThrow(RangeError);
    expect(() => backoffDelayMs({ attempt: 1, baseMs: 0, capMs: 10, random })).toThrow(/baseMs/);
    expect(() => backoffDelayMs({ attempt: 1, baseMs: 100, capMs: 10, random })).toThrow(/capMs/);
    expect(() => backoffDelayMs({ attempt: 1, ...limits, minimumMs: -1, random })).toThrow(/minimumMs/);
    expect(() => backoffDelayMs({ attempt: 1, ...limits, random: () => 1 })).toThrow(/random/);
    expect(() => backoffDelayMs({ attempt: 1, ...limits, random: () => -0.1 })).toThrow(/random/);
    expect(() => backoffDelayMs({ attempt: 1, ...limits, random: () => Number.NaN })).toThrow(/random/);
  });

  it('spreads Math.random delays over the window', () => {
    const delays = Array.from({ length: 500 }, () => backoffDelayMs({ attempt: 4, ...limits, random: Math.random }));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(8000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });
});
