/**
 * How the run ledger's values are written to and read from Redis: meta fields, micro-dollar amounts as decimal strings,
 * script replies, settlements, rows and counters. Every reader validates: a corrupt value is a `LedgerDataError` naming
 * what is wrong, never a silently wrong number.
 */
import type { ChainableCommander } from 'ioredis';
// Defaults are stored with sorted keys, so the same defaults compare equal whatever order they were written in.
import { canonicalJson } from '../core/fingerprint.js';
import { assertMicros, type BudgetState, formatUsd, type Micros } from '../core/money.js';
import { LockLostError } from '../queue/fenced-checkpoint.js';
import {
  LedgerDataError,
  type LedgerFence,
  RESULT_STATUSES,
  type ResultRow,
  type RunCounters,
  type RunMeta,
  type RunMetaDifference,
  resultRowSchema,
  runMetaSchema,
  type Settlement,
  settlementSchema,
} from './ledger-model.js';

// ---------------------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------------------

export const UNLIMITED = 'unlimited';

/** The meta hash's fields in a fixed order, with a label for messages. `createdAt` is not compared. */
export const metaFields = [
  ['model', 'model'],
  ['budgetMicros', 'budget'],
  ['manifestName', 'manifest name'],
  ['manifestSha256', 'manifest sha256'],
  ['outputBucket', 'output bucket'],
  ['outputPrefix', 'output prefix'],
  ['outputKeyTemplate', 'output key template'],
  ['defaults', 'defaults'],
] as const;

type MetaField = (typeof metaFields)[number][0] | 'createdAt';

export function encodeMeta(meta: RunMeta): Record<MetaField, string> {
  return {
    createdAt: meta.createdAt,
    model: meta.model,
    budgetMicros: meta.budgetMicros === null ? UNLIMITED : String(meta.budgetMicros),
    manifestName: meta.manifest.name,
    manifestSha256: meta.manifest.sha256,
    outputBucket: meta.output.bucket,
    outputPrefix: meta.output.prefix,
    outputKeyTemplate: meta.output.keyTemplate,
    defaults: canonicalJson(meta.defaults),
  };
}

export function decodeMeta(run: string, fields: Readonly<Record<string, string>>): RunMeta {
  try {
    const budget = fields.budgetMicros;
    const candidate = {
      createdAt: fields.createdAt,
      model: fields.model,
      budgetMicros: budget === UNLIMITED || budget === undefined ? null : Number(budget),
      manifest: { name: fields.manifestName, sha256: fields.manifestSha256 },
      output: { bucket: fields.outputBucket, prefix: fields.outputPrefix, keyTemplate: fields.outputKeyTemplate },
      defaults: JSON.parse(fields.defaults ?? 'null'),
    };
    return runMetaSchema.parse(candidate);
  } catch (error) {
    throw new LedgerDataError(`The ledger meta of run ${JSON.stringify(run)} does not parse`, { cause: error });
  }
}

export function describeMetaValue(field: MetaField, encoded: string | undefined): string {
  if (encoded === undefined) return 'not set';
  if (field === 'budgetMicros') {
    if (encoded === UNLIMITED) return 'unlimited';
    const micros = Number(encoded);
    return Number.isSafeInteger(micros) ? formatUsd(micros) : JSON.stringify(encoded);
  }
  return field === 'defaults' ? encoded : JSON.stringify(encoded);
}

export function metaDifferences(stored: Readonly<Record<string, string>>, requested: RunMeta): RunMetaDifference[] {
  const wanted = encodeMeta(requested);
  const differences: RunMetaDifference[] = [];
  for (const [field, label] of metaFields) {
    // A stored `defaults` is compared re-canonicalised, in case another version wrote it in another key order.
    const storedValue = field === 'defaults' ? recanonicalise(stored[field]) : stored[field];
    if (storedValue !== wanted[field]) {
      differences.push({
        field,
        label,
        stored: describeMetaValue(field, stored[field]),
        requested: describeMetaValue(field, wanted[field]),
      });
    }
  }
  return differences;
}

export function recanonicalise(json: string | undefined): string | undefined {
  if (json === undefined) return undefined;
  try {
    return canonicalJson(JSON.parse(json));
  } catch {
    return json;
  }
}

export function encodeMicros(amount: Micros, what: string): string {
  assertMicros(amount);
  if (amount < 0) throw new RangeError(`${what} must be ≥ 0 micro-dollars, got ${amount}`);
  return String(amount);
}

export function checkJobId(jobId: string): string {
  if (jobId === '') throw new RangeError('job id must not be empty');
  return jobId;
}

/** A script reply as strings and nulls; anything else means the script and this module disagree. */
export function replyParts(reply: unknown, script: string): Array<string | null> {
  if (!Array.isArray(reply)) throw new LedgerDataError(`${script} replied ${typeof reply}, not an array`);
  return reply.map((part: unknown) => {
    if (part === null || typeof part === 'string') return part;
    throw new LedgerDataError(`${script} replied with a ${typeof part} where a string was expected`);
  });
}

export function parseMicros(text: string | null | undefined, what: string): Micros {
  const value = Number(text ?? '0');
  if (!Number.isSafeInteger(value) || value < 0) {
    // Negative reserved money would mean a release was counted twice: a bug worth stopping for.
    throw new LedgerDataError(
      `${what} in the ledger is ${JSON.stringify(text)}, not a whole number ≥ 0 of micro-dollars`,
    );
  }
  return value;
}

/** `budget|null, reserved, spent, possiblyBilled` starting at `offset` of a reply. */
export function moneyStateOf(parts: ReadonlyArray<string | null>, offset: number): BudgetState {
  const budget = parts[offset];
  return {
    budget: budget === null || budget === undefined ? null : parseMicros(budget, 'budget'),
    reserved: parseMicros(parts[offset + 1], 'reserved'),
    spent: parseMicros(parts[offset + 2], 'spent'),
    possiblyBilled: parseMicros(parts[offset + 3], 'possiblyBilled'),
  };
}

export function parseSettlement(json: string | null | undefined, jobId: string): Settlement {
  try {
    return settlementSchema.parse(JSON.parse(json ?? 'null'));
  } catch (error) {
    throw new LedgerDataError(`The settlement of job ${JSON.stringify(jobId)} does not parse`, { cause: error });
  }
}

export function parseRow(json: string, jobId: string): ResultRow {
  try {
    return resultRowSchema.parse(JSON.parse(json));
  } catch (error) {
    throw new LedgerDataError(`The result row of job ${JSON.stringify(jobId)} does not parse`, { cause: error });
  }
}

export function emptyCounters(): RunCounters {
  return { queued: 0, running: 0, succeeded: 0, failed: 0, flagged: 0, parked: 0, canceled: 0, total: 0 };
}

export function isCounterName(name: string): name is keyof RunCounters {
  return name === 'total' || (RESULT_STATUSES as readonly string[]).includes(name);
}

export function pairsToRecord(parts: ReadonlyArray<string | null>): Record<string, string> {
  const record: Record<string, string> = {};
  for (let index = 0; index + 1 < parts.length; index += 2) {
    const field = parts[index];
    const value = parts[index + 1];
    if (typeof field === 'string' && typeof value === 'string') record[field] = value;
  }
  return record;
}

export function countersRecord(stored: unknown): Record<string, string> {
  if (typeof stored !== 'object' || stored === null) return {};
  if (Array.isArray(stored)) return pairsToRecord(replyParts(stored, 'HGETALL counters'));
  const record: Record<string, string> = {};
  for (const [field, value] of Object.entries(stored)) {
    if (typeof value === 'string') record[field] = value;
  }
  return record;
}

export function checkFence(fence: LedgerFence): LedgerFence {
  if (fence.lockKey === '') throw new RangeError('a fence needs the job lock key');
  // BullMQ's token "0" means "no lock": a fence on it would hold for no one.
  if (fence.token === '' || fence.token === '0') {
    throw new RangeError(`a fence needs the job's lock token, got ${JSON.stringify(fence.token)}`);
  }
  return fence;
}

/** Throws `LockLostError` for a fenced script's `lock-lost` reply: nothing was written. */
export function refuseLostLock(outcome: string | null | undefined, jobId: string): void {
  if (outcome === 'lock-lost') throw new LockLostError(jobId);
}

/** Runs a MULTI of exactly two commands and returns their results, failing on any command error. */
export async function execPair(run: string, multi: ChainableCommander): Promise<readonly [unknown, unknown]> {
  const replies = await multi.exec();
  if (replies === null) throw new LedgerDataError(`The ledger transaction for run ${JSON.stringify(run)} was aborted`);
  const results = replies.map(([error, value]) => {
    if (error !== null) throw error;
    return value;
  });
  return [results[0], results[1]];
}
