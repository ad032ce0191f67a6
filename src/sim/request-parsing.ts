/**
 * Reading what a client sent: the JSON body (bounded), and the two create headers Replicate defines — `Prefer: wait`
 * (sync mode, at most 60 s) and `Cancel-After` (the prediction's deadline). Each parser returns a value or a problem
 * the server answers with.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidDurationError, parseDuration } from './duration.js';
import { badRequestProblem, type ProblemBody, payloadTooLargeProblem } from './problem.js';

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly problem: ProblemBody };

export async function readJsonBody(request: IncomingMessage, limitBytes: number): Promise<Parsed<unknown>> {
  const chunks: Buffer[] = [];
  let total = 0;
  let tooLarge = false;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limitBytes) tooLarge = true;
    else chunks.push(buffer);
  }
  if (tooLarge) return { ok: false, problem: payloadTooLargeProblem(limitBytes) };
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, problem: badRequestProblem(`JSON parse error: ${(error as Error).message}`) };
  }
}

export const MAX_PREFER_WAIT_SECONDS = 60;

/**
 * `Prefer: wait` → 60 s; `Prefer: wait=N` → N s, capped at 60 (Replicate's ceiling). No `wait` preference → undefined.
 * Other preferences in the same header (`respond-async`, …) are ignored.
 */
export function parsePreferWait(header: string | undefined): Parsed<number | undefined> {
  if (header === undefined) return { ok: true, value: undefined };
  for (const preference of header.split(',')) {
    const [name, value] = preference.split('=').map((part) => part.trim());
    if (name?.toLowerCase() !== 'wait') continue;
    if (value === undefined || value === '') return { ok: true, value: MAX_PREFER_WAIT_SECONDS };
    if (!/^\d+$/.test(value) || Number(value) < 1) {
      return {
        ok: false,
        problem: badRequestProblem(
          `Invalid Prefer header "${header}": wait must be a whole number of seconds from 1 to ${MAX_PREFER_WAIT_SECONDS}, e.g. "wait=30"`,
        ),
      };
    }
    return { ok: true, value: Math.min(MAX_PREFER_WAIT_SECONDS, Number(value)) };
  }
  return { ok: true, value: undefined };
}

/** `Cancel-After: 30s` → 30000. Absent → undefined. */
export function parseCancelAfter(header: string | undefined): Parsed<number | undefined> {
  if (header === undefined) return { ok: true, value: undefined };
  try {
    return { ok: true, value: parseDuration(header) };
  } catch (error) {
    if (!(error instanceof InvalidDurationError)) throw error;
    return { ok: false, problem: badRequestProblem(`Invalid Cancel-After header: ${error.message}`) };
  }
}

export function parseTimestamp(name: string, value: string | null): Parsed<number | undefined> {
  if (value === null || value === '') return { ok: true, value: undefined };
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) {
    return {
      ok: false,
      problem: badRequestProblem(`${name} must be an ISO 8601 date-time, e.g. 2025-01-31T12:00:00Z; got "${value}"`),
    };
  }
  return { ok: true, value: ms };
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
