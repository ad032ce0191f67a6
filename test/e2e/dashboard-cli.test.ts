/**
 * `depthq dashboard` as a user starts it: off loopback without credentials it refuses with one message and exit code 2,
 * before it connects to anything.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const repoRoot = resolve(import.meta.dirname, '../..');

function dashboard(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['bin/depthq.js', 'dashboard', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 60_000,
    // Nothing listens on this Redis: a refusal must come before any connection.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', REDIS_URL: 'redis://127.0.0.1:1', ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('depthq dashboard', () => {
  it('refuses to listen on 0.0.0.0 without DASHBOARD_USER and DASHBOARD_PASSWORD: exit 2, one message', () => {
    const { code, stdout, stderr } = dashboard(['--host', '0.0.0.0', '--port', '0']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toEqual([
      'depthq: refusing to listen on 0.0.0.0 without credentials: anyone who can reach it could read every run and ' +
        'its outputs. Set DASHBOARD_USER and DASHBOARD_PASSWORD (basic auth; see .env.example), or leave --host at ' +
        '127.0.0.1.',
    ]);
  });

  it('refuses a password without a user the same way, also on loopback', () => {
    const { code, stderr } = dashboard(['--port', '0'], { DASHBOARD_PASSWORD: 'secret-password' });
    expect(code).toBe(2);
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toContain('DASHBOARD_PASSWORD is set without DASHBOARD_USER');
    expect(stderr).not.toContain('secret-password');
  });

  it('refuses a bad port with the flag rule', () => {
    const { code, stderr } = dashboard(['--port', '70000']);
    expect(code).toBe(2);
    expect(stderr).toContain('--port must be a whole number from 0 to 65535, got "70000"');
  });
});
