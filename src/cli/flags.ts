/**
 * Parsers for command-line values, shared by every command: each refuses a bad value with a UsageError that names the
 * flag (exit code 2), so a user fixes the flag, not the code.
 */
import { UsageError } from '../core/errors.js';
import { InvalidAmountError, type Micros, usdToMicros } from '../core/money.js';

/** A whole number in [min, max], written in plain digits (a leading '-' only when `min` is negative). */
export function wholeNumberFlag(flag: string, text: string, min: number, max: number): number {
  const trimmed = text.trim();
  if (!/^-?\d+$/.test(trimmed) || Number(trimmed) < min || Number(trimmed) > max) {
    throw new UsageError(`${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(trimmed);
}

/** Dollars, exactly (see usdToMicros); `hint` is added to the message, e.g. how to remove a budget. */
export function dollarsFlag(flag: string, text: string, hint = ''): Micros {
  try {
    return usdToMicros(text);
  } catch (error) {
    if (error instanceof InvalidAmountError) throw new UsageError(`${flag}: ${error.message}${hint}`, { cause: error });
    throw error;
  }
}
