/**
 * Secrets never reach logs, job data, Redis, reports or error messages. URLs are the usual carrier: a presigned S3 URL
 * holds a signature in its query string, and a Redis URL may hold a password.
 *
 * Pure.
 */

/** The URL without its query string (and without a password): safe to print. */
export function redactUrl(url: string): string {
  const queryAt = url.search(/[?#]/);
  const base = queryAt === -1 ? url : url.slice(0, queryAt);
  const suffix = queryAt === -1 ? '' : '?…';
  return `${base.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@')}${suffix}`;
}
