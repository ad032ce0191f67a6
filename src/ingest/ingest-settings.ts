/**
 * What an ingest is asked to do, checked before any file is opened (each failure names its flag), and how it maps onto
 * the run's meta in the ledger.
 */
import path from 'node:path';
import { ConfigError, UsageError } from '../core/errors.js';
import { canonicalJson } from '../core/fingerprint.js';
import { defaultOutputKeyTemplate, joinOutputPrefix, parseRunId, validateOutputKeyTemplate } from '../core/keys.js';
import { type InputValue, parseInputDefaults } from '../core/manifest/index.js';
import { defaultModelId, findModel, type ModelDefinition, modelRegistry } from '../core/models.js';
import type { Micros } from '../core/money.js';
import type { NewRun, RunMeta, RunMetaDifference } from '../ledger/run-ledger.js';
import { DEFAULT_MAX_CONTROL_IMAGE_BYTES, DEFAULT_PREFLIGHT_CONCURRENCY } from './preflight.js';

/** Rows a manifest may have unless `maxRows` says otherwise: beyond it, split the manifest into several ingests. */
export const DEFAULT_MAX_ROWS = 1_000_000;

export interface IngestRequest {
  readonly manifestPath: string;
  readonly run: string;
  /** `owner/name`. @defaultValue flux-depth-pro */
  readonly model?: string;
  readonly stylesPath?: string;
  /** `key=value` model-input defaults (`--set`). */
  readonly set?: readonly string[];
  /** Sets the run's budget. */
  readonly budgetMicros?: Micros;
  /** @defaultValue '' (the bucket's root) */
  readonly outputPrefix?: string;
  /** @defaultValue `{run}/{style}/{id}.{ext}` */
  readonly outputKeyTemplate?: string;
  /** Everything but enqueueing: the run is not created, nothing is written. */
  readonly dryRun?: boolean;
  /** Enqueue the valid rows and list the invalid ones instead of enqueueing nothing. */
  readonly skipInvalid?: boolean;
  /** @defaultValue true */
  readonly preflight?: boolean;
  /** @defaultValue 32 */
  readonly preflightConcurrency?: number;
  /** Enqueue although the estimate is above the budget. */
  readonly yes?: boolean;
  /** @defaultValue 1,000,000 */
  readonly maxRows?: number;
  /** @defaultValue 20 MiB */
  readonly maxControlImageBytes?: number;
}

export interface IngestSettings {
  readonly run: string;
  readonly model: ModelDefinition;
  readonly defaults: Readonly<Record<string, InputValue>>;
  readonly output: { readonly bucket: string; readonly prefix: string; readonly template: string };
  /** The manifest's file name, as messages and the ingest history show it. */
  readonly manifestName: string;
  readonly preflight: boolean;
  readonly preflightConcurrency: number;
  readonly maxRows: number;
  readonly maxControlImageBytes: number;
}

function flagError(flag: string, error: unknown): UsageError {
  const detail = error instanceof UsageError ? error.detail : error instanceof Error ? error.message : String(error);
  return new UsageError(`${flag}: ${detail}`, { cause: error });
}

function wholeNumber(flag: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < min || chosen > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got ${String(value)}`);
  }
  return chosen;
}

/**
 * The request's settings, every flag checked. `bucket` is `S3_BUCKET` (outputs go there; bare control-image keys are
 * read from it); `canPreflight` says whether an S3 client was given.
 */
export function ingestSettingsOf(
  request: IngestRequest,
  environment: { readonly bucket: string | undefined; readonly canPreflight: boolean },
): IngestSettings {
  let run: string;
  try {
    run = parseRunId(request.run);
  } catch (error) {
    throw flagError('--run', error);
  }
  const modelId = request.model ?? defaultModelId;
  const model = findModel(modelId);
  if (model === undefined) {
    throw new UsageError(
      `--model: "${modelId}" is not a registered model: depthq knows ${[...modelRegistry.keys()].join(', ')}`,
    );
  }
  const template = request.outputKeyTemplate ?? defaultOutputKeyTemplate;
  try {
    validateOutputKeyTemplate(template);
  } catch (error) {
    throw flagError('--output-key-template', error);
  }
  const prefix = request.outputPrefix ?? '';
  try {
    joinOutputPrefix(prefix, 'key');
  } catch (error) {
    throw flagError('--output-prefix', error);
  }
  if (environment.bucket === undefined) {
    throw new ConfigError('S3_BUCKET is not set: name the bucket that receives the outputs (and holds control images)');
  }
  const preflight = request.preflight ?? true;
  if (preflight && !environment.canPreflight) {
    throw new ConfigError('preflight needs S3 access: configure S3 or pass --no-preflight');
  }
  if (request.budgetMicros !== undefined && (!Number.isSafeInteger(request.budgetMicros) || request.budgetMicros < 0)) {
    throw new UsageError(`--budget must be a dollar amount ≥ 0, got ${request.budgetMicros} micro-dollars`);
  }
  return {
    run,
    model,
    defaults: parseInputDefaults(request.set ?? [], model),
    output: { bucket: environment.bucket, prefix, template },
    manifestName: path.basename(request.manifestPath),
    preflight,
    preflightConcurrency: wholeNumber(
      '--preflight-concurrency',
      request.preflightConcurrency,
      DEFAULT_PREFLIGHT_CONCURRENCY,
      1,
      1000,
    ),
    maxRows: wholeNumber('--max-rows', request.maxRows, DEFAULT_MAX_ROWS, 1, 100_000_000),
    maxControlImageBytes: wholeNumber(
      'maxControlImageBytes',
      request.maxControlImageBytes,
      DEFAULT_MAX_CONTROL_IMAGE_BYTES,
      1,
      Number.MAX_SAFE_INTEGER,
    ),
  };
}

/**
 * The run's meta this ingest asks for. A run's meta keeps what it was created with — the first manifest's name and
 * sha256, the first budget — so a grown manifest is the same run: each ingest's manifest is recorded in the ingest
 * history instead, and the budget changes through `setBudget`. Model, output and defaults must stay the same.
 */
export function requestedRunMeta(
  settings: IngestSettings,
  existing: RunMeta | undefined,
  budget: Micros | null,
  sha256: string,
): NewRun {
  return {
    model: settings.model.id,
    budgetMicros: existing === undefined ? budget : existing.budgetMicros,
    manifest: existing === undefined ? { name: settings.manifestName, sha256 } : existing.manifest,
    output: { bucket: settings.output.bucket, prefix: settings.output.prefix, keyTemplate: settings.output.template },
    defaults: { ...settings.defaults },
  };
}

/**
 * What `createRun` would refuse, found before the manifest is read and without writing anything (a dry run must not
 * create the run, yet must fail where the real ingest would). Compared like the ledger compares them.
 */
export function runSettingsDifferences(stored: RunMeta, settings: IngestSettings): RunMetaDifference[] {
  const requested = requestedRunMeta(settings, stored, stored.budgetMicros, stored.manifest.sha256);
  const differences: RunMetaDifference[] = [];
  const compare = (field: string, label: string, storedValue: string, requestedValue: string) => {
    if (storedValue !== requestedValue)
      differences.push({ field, label, stored: storedValue, requested: requestedValue });
  };
  const quoted = (value: string) => JSON.stringify(value);
  compare('model', 'model', quoted(stored.model), quoted(requested.model));
  compare('outputBucket', 'output bucket', quoted(stored.output.bucket), quoted(requested.output.bucket));
  compare('outputPrefix', 'output prefix', quoted(stored.output.prefix), quoted(requested.output.prefix));
  compare(
    'outputKeyTemplate',
    'output key template',
    quoted(stored.output.keyTemplate),
    quoted(requested.output.keyTemplate),
  );
  compare('defaults', 'defaults', canonicalJson(stored.defaults), canonicalJson(requested.defaults));
  return differences;
}
