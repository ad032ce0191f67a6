/**
 * The process logger: pino, JSON lines on stdout, scoped with `child({ run, row, jobId, attempt })` where work happens.
 * Library modules take a logger; entry points create it. Secrets never reach it: URLs are logged through `redactUrl`,
 * and the token and credentials are never passed to it.
 */
import { type Logger, pino } from 'pino';
import type { Config } from '../config/index.js';

export type { Logger } from 'pino';

export function createLogger(config: Pick<Config, 'logLevel'>, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level: config.logLevel,
    base: { pid: process.pid, ...bindings },
    redact: { paths: ['*.authorization', '*.Authorization', '*.token', '*.apiToken'], censor: '[hidden]' },
  });
}
