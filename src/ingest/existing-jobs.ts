/**
 * The jobs a run already has, as a re-ingest meets them: the same id with the same content is left alone (nothing to
 * enqueue), the same id with other content is a problem naming this manifest's line and where the existing job came
 * from — a job does not change once enqueued, and silently keeping the old one would render what the user no longer
 * asked for.
 */
import type { Redis } from 'ioredis';
import { canonicalJson } from '../core/fingerprint.js';
import type { ManifestLayout, ManifestProblem } from '../core/manifest/index.js';
import type { Micros } from '../core/money.js';
import { parseRenderJob, type RenderJob } from '../core/render-job.js';
import type { RunLedger } from '../ledger/run-ledger.js';
import { queueKeyPrefixOf } from '../queue/render-queue.js';
import { differingParts, type IngestRecord, type JobSource, type RunSources } from './job-sources.js';

/** A job built from a manifest row, with what the ingest needs to know about it. */
export interface CandidateJob {
  readonly line: number;
  readonly jobId: string;
  readonly job: RenderJob;
  readonly digests: string;
  readonly costMicros: Micros;
  readonly images: number;
}

function quote(value: unknown, max = 60): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const shown = text.length > max ? `${text.slice(0, max - 1)}…` : text;
  return typeof value === 'string' ? JSON.stringify(shown) : shown;
}

/** How two jobs with the same id differ, field by field, in words (at most `limit`, then how many more). */
export function describeJobDifferences(existing: RenderJob, incoming: RenderJob, limit = 3): string[] {
  const differences: string[] = [];
  const add = (name: string, before: unknown, after: unknown) => {
    if (canonicalJson(before) !== canonicalJson(after)) {
      differences.push(`${name} is ${quote(before)} there, ${quote(after)} here`);
    }
  };
  const where = (location: { readonly bucket: string; readonly key: string }) =>
    `s3://${location.bucket}/${location.key}`;
  add('model', existing.model, incoming.model);
  add('control_image', where(existing.controlImage), where(incoming.controlImage));
  for (const name of new Set([...Object.keys(existing.input), ...Object.keys(incoming.input)])) {
    add(name, existing.input[name] ?? null, incoming.input[name] ?? null);
  }
  add('output key', where(existing.output), where(incoming.output));
  for (const name of new Set([...Object.keys(existing.metadata), ...Object.keys(incoming.metadata)])) {
    add(`metadata column "${name}"`, existing.metadata[name] ?? null, incoming.metadata[name] ?? null);
  }
  if (differences.length > limit) return [...differences.slice(0, limit), `${differences.length - limit} more`];
  return differences;
}

export interface ExistingJobsContext {
  readonly redis: Redis;
  /** depthq's key prefix, where the render queue's job hashes are. */
  readonly prefix: string;
  readonly ledger: RunLedger;
  readonly sources: RunSources;
  readonly run: string;
  readonly file: string;
  readonly layout: ManifestLayout;
}

export class ExistingJobs {
  readonly #context: ExistingJobsContext;
  readonly #ingests = new Map<number, IngestRecord | undefined>();

  constructor(context: ExistingJobsContext) {
    this.#context = context;
  }

  /**
   * Sorts a batch into jobs to enqueue (new ones, and `queued` ones the queue lost) and jobs the run has; conflicts (same
   * id, other content) come back as problems. Round trips per batch: the jobs' sources, the ledger rows of jobs without
   * one, and the queue for those whose row is `queued`.
   */
  async classify(batch: readonly CandidateJob[]): Promise<{ isNew: boolean[]; problems: ManifestProblem[] }> {
    const { ledger, sources, run } = this.#context;
    const found = await sources.lookup(
      run,
      batch.map((candidate) => candidate.jobId),
    );
    // A job enqueued without a source (by another tool, or by an ingest that crashed between enqueueing and recording)
    // is compared with its ledger row: output key and seed are what such a row holds.
    const rows = await Promise.all(
      batch.map((candidate, index) => (found[index] === undefined ? ledger.result(run, candidate.jobId) : undefined)),
    );
    // A `queued` row without a source may also lack its job: an ingest that died between the ledger rows and `addBulk`.
    // Such a job is enqueued again (same id), or it would stay `queued` for ever. Sources are recorded after `addBulk`,
    // so a job with a source was added; one whose row says it ran or ended is never added again.
    const held = await Promise.all(
      batch.map((candidate, index) => (rows[index]?.status === 'queued' ? this.#queueHolds(candidate.jobId) : true)),
    );
    const isNew: boolean[] = [];
    const problems: ManifestProblem[] = [];
    for (const [index, candidate] of batch.entries()) {
      const source = found[index];
      const row = rows[index];
      if (source !== undefined) {
        isNew.push(false);
        if (source.digests !== candidate.digests) problems.push(await this.#conflict(candidate, source));
      } else if (row !== undefined) {
        isNew.push(held[index] === false);
        if (row.outputKey !== candidate.job.output.key || row.seed !== candidate.job.input.seed) {
          problems.push(
            this.#problem(
              candidate,
              `is already in run "${run}" with different content (enqueued without a manifest: its output key is ` +
                `${quote(row.outputKey ?? '')} and its seed ${String(row.seed)}, here ${quote(candidate.job.output.key)} ` +
                `and ${String(candidate.job.input.seed)})`,
            ),
          );
        }
      } else isNew.push(true);
    }
    return { isNew, problems };
  }

  #problem(candidate: CandidateJob, what: string): ManifestProblem {
    const id = this.#context.layout.known.get('id');
    const style = candidate.job.style === null ? '' : ` in style "${candidate.job.style}"`;
    return {
      file: this.#context.file,
      line: candidate.line,
      ...(id === undefined ? {} : { column: { index: id.position + 1, name: id.header } }),
      message:
        `id "${candidate.job.rowId}"${style} ${what}. An enqueued job does not change: ` +
        'give the row a new id to render it anew, restore the old values, or use a new run',
    };
  }

  async #conflict(candidate: CandidateJob, source: JobSource): Promise<ManifestProblem> {
    if (!this.#ingests.has(source.ingest)) {
      this.#ingests.set(source.ingest, await this.#context.sources.ingest(this.#context.run, source.ingest));
    }
    const origin = `${this.#ingests.get(source.ingest)?.manifest.name ?? 'a manifest'} line ${source.line}`;
    const existing = await this.#enqueuedPayload(candidate.jobId);
    const listed = existing === undefined ? [] : describeJobDifferences(existing, candidate.job);
    // Completed jobs leave BullMQ after a day: then the digests still say which part changed.
    const details =
      listed.length > 0
        ? listed.join('; ')
        : `its ${differingParts(source.digests, candidate.digests).join(', ')} differ`;
    return this.#problem(candidate, `was already enqueued from ${origin} with different content: ${details}`);
  }

  async #queueHolds(jobId: string): Promise<boolean> {
    return (await this.#context.redis.exists(`${queueKeyPrefixOf(this.#context.prefix)}:${jobId}`)) === 1;
  }

  /** The payload BullMQ still holds for the job, read without a Queue object (a dry run writes nothing). */
  async #enqueuedPayload(jobId: string): Promise<RenderJob | undefined> {
    const json = await this.#context.redis.hget(`${queueKeyPrefixOf(this.#context.prefix)}:${jobId}`, 'data');
    if (json === null) return undefined;
    try {
      return parseRenderJob(JSON.parse(json));
    } catch {
      return undefined;
    }
  }
}
