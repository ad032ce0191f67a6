/**
 * depthq's Replicate simulator: a real HTTP server speaking the part of Replicate's API depthq uses, so that code that
 * works against it works against api.replicate.com. Point the official client at it with
 * `new Replicate({ auth: 'any', baseUrl: sim.baseUrl, useFileOutput: false })` or set REPLICATE_BASE_URL=<baseUrl>.
 *
 * API: POST /v1/models/{owner}/{name}/predictions, POST /v1/predictions (version "owner/name[:hash]" or a version hash),
 * GET /v1/predictions[?created_after&created_before&cursor], GET /v1/predictions/{id},
 * POST /v1/predictions/{id}/cancel, GET /v1/models/{owner}/{name}, GET /v1/webhooks/default/secret.
 * Headers: `Prefer: wait[=N]`, `Cancel-After: <duration>`. Outputs: GET /files/{id}/output-{i}.{ext}.
 * Control (no auth): GET /_sim/stats, GET /_sim/health, POST /_sim/faults {…Faults}, POST /_sim/throttle
 * {count, retryAfterSeconds}.
 */
export { InvalidDurationError, parseDuration } from './duration.js';
export { flaggedError, flaggedErrorOf, genericFailureError, nsfwError } from './faults.js';
export {
  type Faults,
  faultsSchema,
  type LatencyRange,
  latencyRangeSchema,
  type SimulatorOptions,
  type SimulatorOptionsInput,
  simulatorOptionsSchema,
} from './options.js';
export { type RunningSimulator, startSimulator } from './simulator.js';
export type { DuplicateBilledInput, PredictionStatus, SimulatorStats } from './stats.js';
export { signWebhook, type WebhookEventType, type WebhookStats, webhookEventTypes } from './webhooks.js';
