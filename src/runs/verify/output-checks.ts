/**
 * Every succeeded row's output in S3: its sidecar is read and compared with the row (`sidecar-checks.ts`), then every
 * object the sidecar describes is streamed and hashed (never held whole) and compared with the sha256 and size the
 * sidecar recorded. At most `concurrency` jobs are read at once (p-limit).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { sidecarKeyOf } from '../../core/keys.js';
import type { RenderJob } from '../../core/render-job.js';
import type { ResultRow } from '../../ledger/run-ledger.js';
import { getObjectBytes, sha256OfObject } from '../../storage/s3.js';
import { compareOutputBytes, compareSidecar, sidecarInputOf } from './sidecar-checks.js';
import type { VerifyProblem } from './verify-model.js';

export interface OutputChecks {
  readonly problems: readonly VerifyProblem[];
  readonly outputsChecked: number;
  readonly sidecarsChecked: number;
  readonly bytesHashed: number;
}

function isMissing(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return error.name === 'NoSuchKey' || error.name === 'NotFound' || status === 404;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

export interface OutputCheckInput {
  readonly s3: S3Client;
  readonly run: string;
  /** The run's output bucket (the row does not name it). */
  readonly bucket: string;
  readonly rows: ReadonlyMap<string, ResultRow>;
  readonly payloads: ReadonlyMap<string, RenderJob>;
  readonly concurrency: number;
  readonly signal?: AbortSignal;
}

export async function checkOutputs(input: OutputCheckInput): Promise<OutputChecks> {
  const { s3, run, rows, payloads } = input;
  const limit = pLimit(input.concurrency);
  const problems: VerifyProblem[] = [];
  let outputsChecked = 0;
  let sidecarsChecked = 0;
  let bytesHashed = 0;

  async function hashObject(
    jobId: string,
    bucket: string,
    key: string,
  ): Promise<{ sha256: string; size: number } | undefined> {
    try {
      const found = await sha256OfObject(s3, { bucket, key }, input.signal);
      outputsChecked += 1;
      bytesHashed += found.size;
      return found;
    } catch (error) {
      if (isMissing(error)) {
        problems.push({ kind: 'output-missing', jobId, message: `s3://${bucket}/${key} does not exist` });
      } else {
        problems.push({ kind: 'output-unchecked', jobId, message: `s3://${bucket}/${key}: ${describeError(error)}` });
      }
      return undefined;
    }
  }

  async function checkJob(jobId: string, row: ResultRow): Promise<void> {
    const payload = payloads.get(jobId);
    const bucket = payload?.output.bucket ?? input.bucket;
    const key = row.outputKey;
    if (key === undefined) {
      problems.push({ kind: 'output-key-missing', jobId, message: 'its row says succeeded but names no output key' });
      return;
    }
    const sidecarKey = sidecarKeyOf(key);
    let sidecarJson: string;
    try {
      sidecarJson = Buffer.from(await getObjectBytes(s3, { bucket, key: sidecarKey })).toString('utf8');
      sidecarsChecked += 1;
    } catch (error) {
      if (isMissing(error)) {
        problems.push({ kind: 'sidecar-missing', jobId, message: `s3://${bucket}/${sidecarKey} does not exist` });
        // Without a sidecar there is nothing to compare the bytes with; the output must still exist.
        await hashObject(jobId, bucket, key);
      } else {
        problems.push({
          kind: 'output-unchecked',
          jobId,
          message: `s3://${bucket}/${sidecarKey}: ${describeError(error)}`,
        });
      }
      return;
    }
    const comparison = compareSidecar(
      jobId,
      run,
      row,
      sidecarJson,
      payload === undefined ? undefined : sidecarInputOf(payload),
    );
    problems.push(...comparison.problems);
    if (comparison.outputs.length === 0) {
      await hashObject(jobId, bucket, key);
      return;
    }
    for (const described of comparison.outputs) {
      const found = await hashObject(jobId, described.bucket, described.key);
      if (found !== undefined) problems.push(...compareOutputBytes(jobId, described, found));
    }
  }

  const succeeded = [...rows].filter(([, row]) => row.status === 'succeeded');
  await Promise.all(succeeded.map(([jobId, row]) => limit(() => checkJob(jobId, row))));
  return { problems, outputsChecked, sidecarsChecked, bytesHashed };
}
