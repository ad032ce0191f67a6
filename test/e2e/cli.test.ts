/**
 * `depthq` as a user runs it: a child process, its exit code, what it prints. User mistakes end with one message and
 * exit code 2, never a stack trace.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(import.meta.dirname, '../..');

function depthq(
  args: string[],
  env: Record<string, string> = {},
): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/depthq.js', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('depthq CLI', () => {
  it('lists every command in --help', () => {
    const { code, stdout } = depthq(['--help']);
    expect(code).toBe(0);
    for (const command of ['config', 'demo', 'simulate', 'worker'])
      expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('prints the effective configuration with the token hidden', () => {
    const { code, stdout } = depthq(['config', '--json'], {
      REPLICATE_API_TOKEN: 'r8_supersecret',
      S3_BUCKET: 'renders',
    });
    expect(code).toBe(0);
    const described = JSON.parse(stdout) as Record<string, string>;
    expect(described).toMatchObject({ REPLICATE_API_TOKEN: '(set, hidden)', S3_BUCKET: 'renders' });
    expect(stdout).not.toContain('r8_supersecret');
  });

  it('stops on a bad environment with one message naming each variable, exit code 2, no stack trace', () => {
    const { code, stderr } = depthq(['config'], { REDIS_URL: 'localhost:6379', DEPTHQ_WORKER_CONCURRENCY: '0' });
    expect(code).toBe(2);
    expect(stderr).toContain('REDIS_URL (got "localhost:6379")');
    expect(stderr).toContain('DEPTHQ_WORKER_CONCURRENCY (got "0")');
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses a bad flag and an unknown command with exit code 2', () => {
    const badFlag = depthq(['worker', '--concurrency', '0']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('--concurrency must be a whole number from 1 to 1000, got "0"');
    const unknown = depthq(['render-everything']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'render-everything'");
  });

  it('asks for a token before a worker starts', () => {
    const { code, stderr } = depthq(['worker'], { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(2);
    expect(stderr).toContain('REPLICATE_API_TOKEN is not set');
  });
});
