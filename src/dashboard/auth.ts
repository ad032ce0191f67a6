/**
 * Who may use the dashboard. On loopback (the default, 127.0.0.1) anyone on the machine may, unless credentials are
 * configured; on any other address the dashboard refuses to start without `DASHBOARD_USER` and `DASHBOARD_PASSWORD`,
 * because it shows every run's prompts and outputs and, with `--allow-actions`, can cancel them. Basic auth compares
 * both values in constant time (hono's `basicAuth` compares hashes with `timingSafeEqual`).
 */
import type { MiddlewareHandler } from 'hono';
import { basicAuth } from 'hono/basic-auth';
import { UsageError } from '../core/errors.js';

export interface DashboardCredentials {
  readonly user: string;
  readonly password: string;
}

/** Paths that answer without credentials: a container's liveness probe carries none, and /healthz shows no data. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz']);

/** 127.0.0.0/8, ::1 and `localhost`: only this machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare);
}

/**
 * The credentials the dashboard asks for, or `undefined` (loopback, none configured). Throws a UsageError (exit code 2,
 * one message) for a non-loopback host without both, and for one set without the other.
 */
export function credentialsFor(
  host: string,
  configured: { readonly user: string | undefined; readonly password: string | undefined },
): DashboardCredentials | undefined {
  const { user, password } = configured;
  if ((user === undefined) !== (password === undefined)) {
    throw new UsageError(
      `${user === undefined ? 'DASHBOARD_PASSWORD' : 'DASHBOARD_USER'} is set without ${user === undefined ? 'DASHBOARD_USER' : 'DASHBOARD_PASSWORD'}: set both (basic auth) or neither`,
    );
  }
  if (user !== undefined && password !== undefined) return { user, password };
  if (isLoopbackHost(host)) return undefined;
  throw new UsageError(
    `refusing to listen on ${host} without credentials: anyone who can reach it could read every run and its outputs. ` +
      'Set DASHBOARD_USER and DASHBOARD_PASSWORD (basic auth; see .env.example), or leave --host at 127.0.0.1.',
  );
}

/** Basic auth on every path but `PUBLIC_PATHS`; a pass-through when there are no credentials. */
export function authMiddleware(credentials: DashboardCredentials | undefined): MiddlewareHandler {
  if (credentials === undefined) return async (_c, next) => next();
  const check = basicAuth({ username: credentials.user, password: credentials.password, realm: 'depthq dashboard' });
  return async (c, next) => (PUBLIC_PATHS.has(c.req.path) ? next() : check(c, next));
}
