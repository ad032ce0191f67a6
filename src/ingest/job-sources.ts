/**
 * Where each job of a run came from, kept in Redis beside the run ledger: the ingest and manifest line that enqueued it
 * and digests of its content. BullMQ ignores an add whose id exists, so without this a re-ingest could not tell an
 * unchanged row (nothing to do) from a row whose prompt was edited after it was enqueued (an error: the job will not
 * change). Also the run's ingest history: each manifest's name and sha256, so a grown manifest is recorded per ingest
 * while the run's meta keeps the first one.
 *
 * Content is compared through digests of its parts rather than the payload itself: a 100,000-job run keeps ~100 bytes per
 * job here, and the part that differs can still be named.
 */
import { hash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { canonicalJson } from '../core/fingerprint.js';
import { ingestKeys } from '../core/keys.js';
import type { RenderJob } from '../core/render-job.js';

/** The parts of a job's content, in the order their digests are stored. Price is left out: it is the registry's. */
export const CONTENT_PARTS = ['model', 'controlImage', 'input', 'output', 'metadata'] as const;
export type ContentPart = (typeof CONTENT_PARTS)[number];

const DIGEST_HEX = 12;

/** `model.controlImage.input.output.metadata` digests, 12 hex each: equal exactly when the content is (in practice). */
export function jobContentDigests(job: RenderJob): string {
  return CONTENT_PARTS.map((part) => hash('sha256', canonicalJson(job[part]), 'hex').slice(0, DIGEST_HEX)).join('.');
}

/** The parts whose digests differ. */
export function differingParts(a: string, b: string): ContentPart[] {
  const left = a.split('.');
  const right = b.split('.');
  return CONTENT_PARTS.filter((_, index) => left[index] !== right[index]);
}

const jobSourceSchema = z.object({
  /** Index of the ingest in the run's history. */
  i: z.int().nonnegative(),
  /** The manifest line (first line of the record). */
  l: z.int().positive(),
  /** `jobContentDigests`. */
  d: z.string().min(1),
});

export interface JobSource {
  readonly ingest: number;
  readonly line: number;
  readonly digests: string;
}

export const ingestRecordSchema = z.object({
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime().optional(),
  manifest: z.object({ name: z.string(), sha256: z.string(), bytes: z.int().nonnegative() }),
  styles: z.object({ name: z.string(), sha256: z.string() }).optional(),
  rows: z.int().nonnegative(),
  invalidRows: z.int().nonnegative(),
  jobs: z.int().nonnegative(),
  /** Jobs this ingest added; filled in when it finishes. */
  added: z.int().nonnegative().optional(),
  /** Jobs the run had already, unchanged. */
  existing: z.int().nonnegative(),
});

export type IngestRecord = z.output<typeof ingestRecordSchema>;

export class IngestDataError extends Error {
  override readonly name = 'IngestDataError';
}

function parseJson<T>(schema: z.ZodType<T>, json: string, what: string): T {
  try {
    return schema.parse(JSON.parse(json));
  } catch (error) {
    throw new IngestDataError(`${what} in Redis does not parse`, { cause: error });
  }
}

/** The run's job sources and ingest history. The connection is the caller's. */
export class RunSources {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  /** The source of each job id (in the same order), `undefined` for jobs no ingest recorded. */
  async lookup(run: string, jobIds: readonly string[]): Promise<Array<JobSource | undefined>> {
    if (jobIds.length === 0) return [];
    const values = await this.#redis.hmget(ingestKeys(this.#prefix, run).sources, ...jobIds);
    return values.map((json, index) => {
      if (json === null) return undefined;
      const parsed = parseJson(jobSourceSchema, json, `The source of job ${jobIds[index] ?? ''}`);
      return { ingest: parsed.i, line: parsed.l, digests: parsed.d };
    });
  }

  async record(
    run: string,
    entries: ReadonlyArray<{ readonly jobId: string; readonly source: JobSource }>,
  ): Promise<void> {
    if (entries.length === 0) return;
    const fields = entries.flatMap(({ jobId, source }) => [
      jobId,
      JSON.stringify({ i: source.ingest, l: source.line, d: source.digests }),
    ]);
    await this.#redis.hset(ingestKeys(this.#prefix, run).sources, ...fields);
  }

  /** Appends an ingest to the history; returns its index. */
  async beginIngest(run: string, record: IngestRecord): Promise<number> {
    const length = await this.#redis.rpush(
      ingestKeys(this.#prefix, run).ingests,
      JSON.stringify(ingestRecordSchema.parse(record)),
    );
    return length - 1;
  }

  async finishIngest(run: string, index: number, record: IngestRecord): Promise<void> {
    await this.#redis.lset(
      ingestKeys(this.#prefix, run).ingests,
      index,
      JSON.stringify(ingestRecordSchema.parse(record)),
    );
  }

  async ingest(run: string, index: number): Promise<IngestRecord | undefined> {
    const json = await this.#redis.lindex(ingestKeys(this.#prefix, run).ingests, index);
    return json === null ? undefined : parseJson(ingestRecordSchema, json, `Ingest ${index} of run ${run}`);
  }

  /** Every ingest of the run, oldest first. */
  async ingests(run: string): Promise<IngestRecord[]> {
    const values = await this.#redis.lrange(ingestKeys(this.#prefix, run).ingests, 0, -1);
    return values.map((json, index) => parseJson(ingestRecordSchema, json, `Ingest ${index} of run ${run}`));
  }
}
