/**
 * Durations written the way Replicate's `Cancel-After` header takes them (Go-style: "500ms", "30s", "1m", "1h30m"),
 * also used by the simulator's CLI for `--retention`. A bare number means seconds, as in the header.
 */

const unitMs: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const wholePattern = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const partPattern = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

export class InvalidDurationError extends Error {
  override readonly name = 'InvalidDurationError';
}

/** Milliseconds in `text`; throws InvalidDurationError (saying what is accepted) for anything else or for zero. */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  let total = 0;
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) {
    total = Number(trimmed) * 1000;
  } else if (wholePattern.test(trimmed)) {
    for (const match of trimmed.matchAll(partPattern)) {
      total += Number(match[1]) * (unitMs[match[2] ?? 's'] ?? 1000);
    }
  } else {
    throw new InvalidDurationError(
      `"${text}" is not a duration: write a number with a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1m, 1h30m`,
    );
  }
  const ms = Math.round(total);
  if (ms <= 0 || !Number.isSafeInteger(ms)) {
    throw new InvalidDurationError(`"${text}" is not a positive duration`);
  }
  return ms;
}
