/**
 * A private temporary file of the jobs an ingest has validated, one JSON line each. Validation must finish — every row,
 * the preflight, the estimate — before anything is enqueued (all or nothing), yet 100,000 job payloads should not sit
 * in memory while it does: they wait here instead, and are read back in batches for `addBulk`.
 */
import { once } from 'node:events';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import type { RenderJob } from '../core/render-job.js';

export interface SpooledJob {
  /** The manifest line the job's row starts on. */
  readonly line: number;
  readonly jobId: string;
  readonly digests: string;
  readonly costMicros: number;
  readonly images: number;
  /** The run has no job with this id yet. Jobs the run has unchanged are spooled only for the estimate. */
  readonly isNew: boolean;
  /** Present for new jobs only. */
  readonly job?: RenderJob;
}

const spooledHeaderSchema = z.object({
  line: z.int().positive(),
  jobId: z.string().min(1),
  digests: z.string(),
  costMicros: z.int().nonnegative(),
  images: z.int().nonnegative(),
  isNew: z.boolean(),
});

/** Separates an entry's header from its payload; JSON never contains a raw tab, so the split is unambiguous. */
const SEPARATOR = '\t';

export class JobSpool {
  readonly #directory: string;
  readonly #file: string;
  #out: WriteStream | undefined;
  #count = 0;

  private constructor(directory: string) {
    this.#directory = directory;
    this.#file = path.join(directory, 'jobs.ndjson');
    this.#out = createWriteStream(this.#file, { flags: 'wx', mode: 0o600 });
  }

  /** A new spool in a fresh private directory under `parent` (the system's temp directory by default). */
  static async create(parent: string = os.tmpdir()): Promise<JobSpool> {
    return new JobSpool(await mkdtemp(path.join(parent, 'depthq-ingest-')));
  }

  get count(): number {
    return this.#count;
  }

  async write(entry: SpooledJob): Promise<void> {
    const out = this.#out;
    if (out === undefined) throw new Error('the job spool is closed for writing');
    this.#count++;
    const { job, ...header } = entry;
    const text = `${JSON.stringify(header)}${job === undefined ? '' : `${SEPARATOR}${JSON.stringify(job)}`}\n`;
    if (!out.write(text)) await once(out, 'drain');
  }

  /** Ends writing; `read` may be called (any number of times) afterwards. */
  async finish(): Promise<void> {
    const out = this.#out;
    if (out === undefined) return;
    this.#out = undefined;
    await new Promise<void>((resolve, reject) => {
      out.once('error', reject);
      out.end(() => resolve());
    });
  }

  /**
   * The spooled jobs in the order they were written; with `payloads: false` without their payloads, which are then
   * not even parsed (the estimate needs only the headers).
   */
  async *read(options: { readonly payloads?: boolean } = {}): AsyncGenerator<SpooledJob> {
    if (this.#out !== undefined) throw new Error('finish() the job spool before reading it');
    const payloads = options.payloads ?? true;
    const lines = createInterface({ input: createReadStream(this.#file), crlfDelay: Number.POSITIVE_INFINITY });
    for await (const text of lines) {
      if (text === '') continue;
      const tab = text.indexOf(SEPARATOR);
      const header = spooledHeaderSchema.parse(JSON.parse(tab === -1 ? text : text.slice(0, tab)));
      if (!payloads || tab === -1) {
        yield header;
        continue;
      }
      // Written by this process moments ago from a job `buildRenderJob` validated, in a directory only this user can
      // read: validating all of it again would cost as much as building it did (the worker validates it anyway).
      const job = JSON.parse(text.slice(tab + 1)) as RenderJob;
      yield { ...header, job };
    }
  }

  /** Removes the spool's directory. Idempotent. */
  async dispose(): Promise<void> {
    const out = this.#out;
    this.#out = undefined;
    if (out !== undefined && !out.closed) {
      await new Promise<void>((resolve) => {
        out.once('close', () => resolve());
        out.destroy();
      });
    }
    await rm(this.#directory, { recursive: true, force: true });
  }
}
