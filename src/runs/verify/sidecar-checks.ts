/**
 * A succeeded row against its provenance sidecar (`src/pipeline/sidecar.ts` writes it): the sidecar must describe this
 * job — its seed, prediction, cost and the exact input the payload holds — and it names the bytes (sha256, size) each
 * output object must have. Pure. See docs/verify.md.
 */
import { z } from 'zod';
import { canonicalJson } from '../../core/fingerprint.js';
import type { RenderJob } from '../../core/render-job.js';
import type { ResultRow } from '../../ledger/run-ledger.js';
import type { VerifyProblem } from './verify-model.js';

const describedObjectSchema = z.object({
  bucket: z.string().min(1),
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().nonnegative(),
});

/** The parts of a sidecar verify compares; the rest (timings, hosts) is provenance, not checked. */
export const sidecarSchema = z.object({
  depthq: z.object({ jobId: z.string(), run: z.string() }),
  seed: z.unknown(),
  input: z.record(z.string(), z.unknown()),
  prediction: z.object({ id: z.string() }),
  cost: z.object({ micros: z.int().nonnegative() }),
  output: describedObjectSchema,
  outputs: z.array(describedObjectSchema).optional(),
});

export type DescribedObject = z.output<typeof describedObjectSchema>;

export interface SidecarComparison {
  readonly problems: readonly VerifyProblem[];
  /** The objects the sidecar describes, each to be hashed and compared; empty when it did not parse. */
  readonly outputs: readonly DescribedObject[];
}

/**
 * The input a sidecar records for a payload: the control image as its S3 location (under `control_image`, as
 * `sidecarOf` writes it), not the presigned URL that was sent.
 */
export function sidecarInputOf(payload: RenderJob): Record<string, unknown> {
  return { ...payload.input, control_image: `s3://${payload.controlImage.bucket}/${payload.controlImage.key}` };
}

function shown(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/**
 * @param expectedInput the input the job's payload renders (`sidecarInputOf`), when the ledger kept the payload
 */
export function compareSidecar(
  jobId: string,
  run: string,
  row: ResultRow,
  sidecarJson: string,
  expectedInput: Readonly<Record<string, unknown>> | undefined,
): SidecarComparison {
  let value: unknown;
  try {
    value = JSON.parse(sidecarJson);
  } catch (error) {
    const message = `its sidecar is not JSON: ${error instanceof Error ? error.message : String(error)}`;
    return { problems: [{ kind: 'sidecar-unreadable', jobId, message }], outputs: [] };
  }
  const parsed = sidecarSchema.safeParse(value);
  if (!parsed.success) {
    const message = `its sidecar lacks what verify compares: ${z.prettifyError(parsed.error).replace(/\n/g, '; ')}`;
    return { problems: [{ kind: 'sidecar-unreadable', jobId, message }], outputs: [] };
  }
  const sidecar = parsed.data;
  const differences: string[] = [];
  const differ = (what: string, sidecarValue: unknown, rowValue: unknown) =>
    differences.push(`${what} is ${shown(sidecarValue)} in the sidecar, ${shown(rowValue)} in the ledger`);
  if (sidecar.depthq.jobId !== jobId) differ('the job id', sidecar.depthq.jobId, jobId);
  if (sidecar.depthq.run !== run) differ('the run', sidecar.depthq.run, run);
  if (sidecar.seed !== row.seed) differ('the seed', sidecar.seed, row.seed);
  if (sidecar.input.seed !== row.seed) differ("the input's seed", sidecar.input.seed, row.seed);
  if (sidecar.prediction.id !== row.predictionId) differ('the prediction id', sidecar.prediction.id, row.predictionId);
  if (sidecar.cost.micros !== (row.costMicros ?? 0)) differ('the cost (micros)', sidecar.cost.micros, row.costMicros);
  if (expectedInput !== undefined && canonicalJson(sidecar.input) !== canonicalJson(expectedInput)) {
    differ('the input', sidecar.input, expectedInput);
  } else if (row.prompt !== undefined && sidecar.input.prompt !== row.prompt) {
    differ('the prompt', sidecar.input.prompt, row.prompt);
  }
  if (row.outputKey !== undefined && sidecar.output.key !== row.outputKey) {
    differ('the output key', sidecar.output.key, row.outputKey);
  }
  const problems: VerifyProblem[] = differences.map((difference) => ({
    kind: 'sidecar-mismatch',
    jobId,
    ...(row.predictionId === undefined ? {} : { predictionId: row.predictionId }),
    message: difference,
  }));
  return { problems, outputs: sidecar.outputs ?? [sidecar.output] };
}

/** An output object's bytes as hashed in S3 against what its sidecar says they are. */
export function compareOutputBytes(
  jobId: string,
  described: DescribedObject,
  found: { readonly sha256: string; readonly size: number },
): VerifyProblem[] {
  if (found.sha256 === described.sha256 && found.size === described.size) return [];
  return [
    {
      kind: 'output-bytes-differ',
      jobId,
      message:
        `s3://${described.bucket}/${described.key} has sha256 ${found.sha256} (${found.size} bytes); its sidecar says ` +
        `${described.sha256} (${described.size} bytes)`,
    },
  ];
}
