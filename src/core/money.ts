/**
 * Money as integer micro-dollars (1 USD = 1,000,000 µ$). Floats never touch a budget: 0.1 + 0.2 !== 0.3, and a run of
 * 100,000 images at $0.05 must add up to exactly $5,000.00. Conversions to and from text happen at the edges only.
 *
 * Pure: no I/O.
 */

/** An amount in micro-dollars: a non-negative safe integer unless a difference is meant. */
export type Micros = number;

export const MICROS_PER_USD = 1_000_000;

const usdPattern = /^\s*\$?\s*(\d{1,12})(?:\.(\d{1,6}))?\s*$/;

export class InvalidAmountError extends Error {
  override readonly name = 'InvalidAmountError';
}

/**
 * Parses a dollar amount written by a person ("0.05", "$12", "1000.5") into micro-dollars, exactly.
 * More than six decimals, negatives, exponents and anything else are refused with a message that says what is accepted.
 */
export function usdToMicros(text: string): Micros {
  const match = usdPattern.exec(text);
  if (!match) {
    throw new InvalidAmountError(
      `"${text}" is not a dollar amount: write digits with at most six decimals, e.g. 25 or 0.05 or $1200.50`,
    );
  }
  const whole = Number(match[1]);
  const fraction = Number((match[2] ?? '').padEnd(6, '0'));
  const micros = whole * MICROS_PER_USD + fraction;
  // Twelve digits of dollars pass the pattern, but past ~$9 billion micro-dollars are no longer exact doubles.
  if (!Number.isSafeInteger(micros)) {
    throw new InvalidAmountError(`"${text}" is too large: depthq handles amounts up to $9,007,199,254.740991`);
  }
  return micros;
}

/** Formats micro-dollars as dollars with at least two decimals and no trailing noise: 50000 → "$0.05", 12 → "$0.000012". */
export function formatUsd(micros: Micros): string {
  assertMicros(micros);
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  const whole = Math.floor(abs / MICROS_PER_USD);
  let fraction = String(abs % MICROS_PER_USD).padStart(6, '0');
  while (fraction.length > 2 && fraction.endsWith('0')) fraction = fraction.slice(0, -1);
  return `${sign}$${whole.toLocaleString('en-US')}.${fraction}`;
}

/** Micro-dollars as a plain decimal string for machines (CSV, JSON reports): 50000 → "0.050000". */
export function microsToDecimal(micros: Micros): string {
  assertMicros(micros);
  const sign = micros < 0 ? '-' : '';
  const abs = Math.abs(micros);
  return `${sign}${Math.floor(abs / MICROS_PER_USD)}.${String(abs % MICROS_PER_USD).padStart(6, '0')}`;
}

export function assertMicros(value: number): asserts value is Micros {
  if (!Number.isSafeInteger(value)) throw new InvalidAmountError(`${value} is not a whole number of micro-dollars`);
}

/** The cost of `imageCount` images at `priceMicrosPerImage` each. */
export function costOf(priceMicrosPerImage: Micros, imageCount: number): Micros {
  assertMicros(priceMicrosPerImage);
  if (!Number.isSafeInteger(imageCount) || imageCount < 0) {
    throw new InvalidAmountError(`image count must be a whole number ≥ 0, got ${imageCount}`);
  }
  const cost = priceMicrosPerImage * imageCount;
  assertMicros(cost);
  return cost;
}

export interface BudgetState {
  /** The run's budget; `null` means unlimited. */
  readonly budget: Micros | null;
  /** Money set aside for predictions that are under way. */
  readonly reserved: Micros;
  /** Money for images that were delivered (succeeded × price). */
  readonly spent: Micros;
  /** Money that may have been billed although no image was kept (flagged, canceled while running). */
  readonly possiblyBilled: Micros;
}

/** What a run has committed: everything the budget guard must count, because the invoice may include all of it. */
export function committedOf(state: BudgetState): Micros {
  return state.reserved + state.spent + state.possiblyBilled;
}

/** Whether `amount` more can be reserved without the run's commitments passing its budget. */
export function canReserve(state: BudgetState, amount: Micros): boolean {
  assertMicros(amount);
  if (state.budget === null) return true;
  return committedOf(state) + amount <= state.budget;
}

/** What is left of the budget (never negative); `null` when the run has no budget. */
export function remainingOf(state: BudgetState): Micros | null {
  if (state.budget === null) return null;
  return Math.max(0, state.budget - committedOf(state));
}
