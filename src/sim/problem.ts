/**
 * Replicate's error bodies (RFC 7807, `application/problem+json`) and the few ways the simulator writes a response.
 * Bodies copy the production shapes a client may parse: `detail`, `status`, `title`, plus `invalid_fields` (422) and
 * `retry_after` (429).
 */
import type { ServerResponse } from 'node:http';
import { describeInvalidFields, type InvalidField } from '../core/models.js';

export interface ProblemBody {
  readonly title?: string;
  readonly detail: string;
  readonly status: number;
  readonly [extra: string]: unknown;
}

export function sendJson(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

export function sendProblem(
  response: ServerResponse,
  problem: ProblemBody,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(problem);
  response.writeHead(problem.status, {
    'Content-Type': 'application/problem+json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

export function unauthenticatedProblem(): ProblemBody {
  return { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 };
}

/** Replicate's answer to a create when the account has no credit left. */
export function insufficientCreditProblem(): ProblemBody {
  return {
    title: 'Insufficient credit',
    detail:
      'You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing to ' +
      'purchase credit. Once you purchase credit, please wait a few minutes before trying again.',
    status: 402,
  };
}

export function notFoundProblem(detail = 'Not found.'): ProblemBody {
  return { title: 'Not found', detail, status: 404 };
}

export function badRequestProblem(detail: string): ProblemBody {
  return { title: 'Bad request', detail, status: 400 };
}

export function methodNotAllowedProblem(method: string): ProblemBody {
  return { title: 'Method not allowed', detail: `Method "${method}" not allowed.`, status: 405 };
}

export function payloadTooLargeProblem(limitBytes: number): ProblemBody {
  return { title: 'Payload too large', detail: `The request body exceeds ${limitBytes} bytes.`, status: 413 };
}

/** Exactly Replicate's 422: one `- field: description` line per problem in `detail`. */
export function inputValidationProblem(invalidFields: readonly InvalidField[]): ProblemBody {
  return {
    detail: describeInvalidFields(invalidFields),
    status: 422,
    title: 'Input validation failed',
    invalid_fields: invalidFields,
  };
}

export function invalidVersionProblem(): ProblemBody {
  return { title: 'Invalid version or not permitted', detail: 'Invalid version or not permitted', status: 422 };
}

/** Replicate's 429 body; the `Retry-After` header is sent alongside (production sends it, clients should read both). */
export function throttledProblem(retryAfterSeconds: number): ProblemBody {
  return {
    detail: `Request was throttled. Your rate limit resets in ~${retryAfterSeconds}s.`,
    status: 429,
    retry_after: retryAfterSeconds,
  };
}

export function serverErrorProblem(status: 500 | 502 | 503): ProblemBody {
  const titles = { 500: 'Internal server error', 502: 'Bad gateway', 503: 'Service unavailable' } as const;
  return {
    title: titles[status],
    detail: `${titles[status]} (simulated fault)`,
    status,
  };
}
