/**
 * Every command-line value is parsed here, for every command: a bad value is refused with a FlagError in one shape —
 * `<flag> must be <what it takes>, got "<what it got>"` — which main.ts prints alone with exit code 2, so a user fixes
 * the flag, not the code.
 */
import { FlagError } from '../core/errors.js';
import { InvalidAmountError, type Micros, usdToMicros } from '../core/money.js';
import { InvalidDurationError, parseDuration } from '../sim/index.js';

/** A whole number in [min, max], written in plain digits (a leading '-' only when `min` is negative). */
export function wholeNumberFlag(flag: string, text: string, min: number, max: number): number {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed) || Number(trimmed) < min || Number(trimmed) > max) {
    throw new FlagError(flag, text, `a whole number from ${min} to ${max}`);
  }
  return Number(trimmed);
}

/** A number in [min, max] (decimals allowed); `unit` names what it counts, e.g. "seconds". */
export function numberFlag(flag: string, text: string, min: number, max: number, unit: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new FlagError(flag, text, `a number of ${unit} from ${min} to ${max}`);
  }
  return value;
}

/** A number above 0 (decimals allowed). */
export function positiveNumberFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new FlagError(flag, text, 'a number above 0');
  }
  return value;
}

/** A share of a whole, from 0 to 1. */
export function shareFlag(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new FlagError(flag, text, 'a share from 0 to 1 (e.g. 0.05 for 5%)');
  }
  return value;
}

/** Milliseconds as a range: "800" → 800..800; "200-1500" → 200..1500. */
export function millisecondsRangeFlag(flag: string, text: string): { min: number; max: number } {
  const match = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(text);
  const min = Number(match?.[1]);
  const max = match?.[2] === undefined ? min : Number(match[2]);
  if (!match || min > max) {
    throw new FlagError(flag, text, 'milliseconds or a range min-max (e.g. 800 or 200-1500)');
  }
  return { min, max };
}

/** A positive duration with a unit ("500ms", "30s", "1h30m"; a bare number is seconds), in milliseconds. */
export function durationFlag(flag: string, text: string): number {
  try {
    return parseDuration(text);
  } catch (error) {
    if (error instanceof InvalidDurationError) {
      throw new FlagError(flag, text, 'a positive duration with a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1m, 1h30m', {
        cause: error,
      });
    }
    throw error;
  }
}

/** Dollars, exactly (see usdToMicros); `alternative` is added to what the flag takes, e.g. how to remove a budget. */
export function dollarsFlag(flag: string, text: string, alternative = ''): Micros {
  try {
    return usdToMicros(text);
  } catch (error) {
    if (error instanceof InvalidAmountError) {
      throw new FlagError(
        flag,
        text,
        `a dollar amount with at most six decimals, up to $9,007,199,254.740991 (e.g. 25, 0.05 or $1200.50)${alternative}`,
        { cause: error },
      );
    }
    throw error;
  }
}

/** Text that is not empty or blank; `what` says what it names, e.g. "a folder". */
export function nonEmptyFlag(flag: string, text: string, what: string): string {
  if (text.trim() === '') throw new FlagError(flag, text, what);
  return text;
}
