/**
 * Every command-line value is parsed by src/cli/flags.ts and refused with one error type (FlagError, a UsageError:
 * exit code 2, no stack trace) in one shape: `<flag> must be <what it takes>, got "<what it got>"`. One case per parser
 * error, then the commands' own flags through commander, each refused before anything is connected.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerDemoCommand } from '../../src/cli/demo.js';
import {
  dollarsFlag,
  durationFlag,
  millisecondsRangeFlag,
  nonEmptyFlag,
  numberFlag,
  positiveNumberFlag,
  shareFlag,
  wholeNumberFlag,
} from '../../src/cli/flags.js';
import { registerRunCommands } from '../../src/cli/runs.js';
import { registerSimulateCommand } from '../../src/cli/simulate.js';
import { registerWorkerCommand } from '../../src/cli/worker.js';
import { FlagError, UsageError } from '../../src/core/errors.js';

const DOLLARS = 'a dollar amount with at most six decimals, up to $9,007,199,254.740991 (e.g. 25, 0.05 or $1200.50)';

function refusal(parse: () => unknown): FlagError {
  try {
    parse();
  } catch (error) {
    if (error instanceof FlagError) return error;
    throw error;
  }
  throw new Error('the value was accepted');
}

describe('flag parsers', () => {
  const cases: Array<[string, () => unknown, string]> = [
    [
      'wholeNumberFlag: not digits',
      () => wholeNumberFlag('--images', 'lots', 1, 20),
      '--images must be a whole number from 1 to 20, got "lots"',
    ],
    [
      'wholeNumberFlag: out of range',
      () => wholeNumberFlag('--port', '70000', 0, 65_535),
      '--port must be a whole number from 0 to 65535, got "70000"',
    ],
    [
      'wholeNumberFlag: a fraction',
      () => wholeNumberFlag('--fault-seed', '1.5', -2, 2),
      '--fault-seed must be a whole number from -2 to 2, got "1.5"',
    ],
    [
      'numberFlag',
      () => numberFlag('--interval', '0.1', 0.2, 3600, 'seconds'),
      '--interval must be a number of seconds from 0.2 to 3600, got "0.1"',
    ],
    [
      'numberFlag: empty',
      () => numberFlag('--interval', ' ', 0.2, 3600, 'seconds'),
      '--interval must be a number of seconds from 0.2 to 3600, got " "',
    ],
    [
      'positiveNumberFlag',
      () => positiveNumberFlag('--creates-per-minute', '0'),
      '--creates-per-minute must be a number above 0, got "0"',
    ],
    [
      'shareFlag',
      () => shareFlag('--failure-rate', '2'),
      '--failure-rate must be a share from 0 to 1 (e.g. 0.05 for 5%), got "2"',
    ],
    [
      'millisecondsRangeFlag',
      () => millisecondsRangeFlag('--latency-ms', '900-100'),
      '--latency-ms must be milliseconds or a range min-max (e.g. 800 or 200-1500), got "900-100"',
    ],
    [
      'durationFlag',
      () => durationFlag('--retention', 'forever'),
      '--retention must be a positive duration with a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1m, 1h30m, got "forever"',
    ],
    [
      'durationFlag: zero',
      () => durationFlag('--retention', '0s'),
      '--retention must be a positive duration with a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1m, 1h30m, got "0s"',
    ],
    ['dollarsFlag', () => dollarsFlag('--budget', 'ten dollars'), `--budget must be ${DOLLARS}, got "ten dollars"`],
    [
      'dollarsFlag: too large',
      () => dollarsFlag('--budget', '999999999999'),
      `--budget must be ${DOLLARS}, got "999999999999"`,
    ],
    ['nonEmptyFlag', () => nonEmptyFlag('--out', '  ', 'a folder'), '--out must be a folder, got "  "'],
  ];
  for (const [name, parse, message] of cases) {
    it(`${name}: ${message}`, () => {
      const error = refusal(parse);
      expect(error).toBeInstanceOf(UsageError);
      expect(error.message).toBe(message);
    });
  }

  it('says which flag, what it got and what it expects in fields as well as in the message', () => {
    const error = refusal(() => shareFlag('--reset-rate', 'lots'));
    expect(error).toMatchObject({ name: 'FlagError', flag: '--reset-rate', got: 'lots' });
    expect(error.expected).toBe('a share from 0 to 1 (e.g. 0.05 for 5%)');
  });

  it('returns what it parsed', () => {
    expect(wholeNumberFlag('--port', ' 8787 ', 0, 65_535)).toBe(8787);
    expect(numberFlag('--interval', '0.5', 0.2, 3600, 'seconds')).toBe(0.5);
    expect(millisecondsRangeFlag('--latency-ms', '200-1500')).toEqual({ min: 200, max: 1500 });
    expect(durationFlag('--retention', '1h30m')).toBe(5_400_000);
    expect(dollarsFlag('--budget', '$12.50')).toBe(12_500_000);
  });
});

/** A program with `register` only, whose parse rejects instead of exiting. */
async function commandRefusal(register: (program: Command) => void, argv: string[]): Promise<FlagError> {
  const program = new Command('depthq').exitOverride();
  register(program);
  const error: unknown = await program.parseAsync(argv, { from: 'user' }).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  if (error instanceof FlagError) return error;
  throw new Error(`expected a FlagError, got ${String(error)}`);
}

describe("the commands' flags", () => {
  const cases: Array<[string, (program: Command) => void, string[], string]> = [
    [
      'worker --concurrency',
      registerWorkerCommand,
      ['worker', '--concurrency', '0'],
      '--concurrency must be a whole number from 1 to 1000, got "0"',
    ],
    [
      'status --interval',
      registerRunCommands,
      ['status', 'run-1', '--interval', 'soon'],
      '--interval must be a number of seconds from 0.2 to 3600, got "soon"',
    ],
    [
      'budget <usd>',
      registerRunCommands,
      ['budget', 'run-1', 'ten dollars'],
      `<usd> must be ${DOLLARS}, or "unlimited" to remove the budget, got "ten dollars"`,
    ],
    ['sheet --out', registerRunCommands, ['sheet', 'run-1', '--out', ' '], '--out must be a folder, got " "'],
    ['demo --out', registerDemoCommand, ['demo', '--out', ''], '--out must be a folder, got ""'],
    [
      'demo --workers',
      registerDemoCommand,
      ['demo', '--workers', '0'],
      '--workers must be a whole number from 1 to 8, got "0"',
    ],
    [
      'simulate --host',
      registerSimulateCommand,
      ['simulate', '--host', ''],
      '--host must be an interface to listen on (e.g. 127.0.0.1 or 0.0.0.0), got ""',
    ],
    [
      'simulate --api-token',
      registerSimulateCommand,
      ['simulate', '--api-token', ' '],
      '--api-token must be a non-empty token, got " "',
    ],
    [
      'simulate --retention',
      registerSimulateCommand,
      ['simulate', '--retention', 'forever'],
      '--retention must be a positive duration with a unit (ms, s, m, h, d), e.g. 500ms, 30s, 1m, 1h30m, got "forever"',
    ],
    [
      'simulate --start-delay-ms',
      registerSimulateCommand,
      ['simulate', '--start-delay-ms', 'x'],
      '--start-delay-ms must be milliseconds or a range min-max (e.g. 800 or 200-1500), got "x"',
    ],
    [
      'simulate --requests-per-minute',
      registerSimulateCommand,
      ['simulate', '--requests-per-minute', '-1'],
      '--requests-per-minute must be a number above 0, got "-1"',
    ],
    [
      'simulate --flagged-rate',
      registerSimulateCommand,
      ['simulate', '--flagged-rate', '1.5'],
      '--flagged-rate must be a share from 0 to 1 (e.g. 0.05 for 5%), got "1.5"',
    ],
    [
      'simulate --output-max-side',
      registerSimulateCommand,
      ['simulate', '--output-max-side', '8'],
      '--output-max-side must be a whole number from 16 to 2048, got "8"',
    ],
  ];
  for (const [name, register, argv, message] of cases) {
    it(`${name}: ${message}`, async () => {
      const error = await commandRefusal(register, argv);
      expect(error.message).toBe(message);
    });
  }
});
