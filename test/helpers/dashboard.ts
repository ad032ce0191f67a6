/**
 * Helpers for the dashboard tests: an app over a render-run fixture (socket-free, driven with `app.request()`), the
 * first live event of a stream, and the strings that must never appear on a page.
 */
import type { Hono } from 'hono';
import { createDashboardApp, type DashboardOptions } from '../../src/dashboard/app.js';
import { providerForConfig } from '../../src/providers/provider-for-config.js';
import type { RenderRunFixture } from './render-run.js';

export function dashboardFor(fixture: RenderRunFixture, options: Partial<DashboardOptions> = {}): Hono {
  return createDashboardApp(
    {
      config: fixture.config,
      redis: fixture.redis,
      ledger: fixture.ledger,
      queue: fixture.queue,
      s3: fixture.s3,
      providerForCancel: () => providerForConfig(fixture.config),
    },
    { allowActions: false, credentials: undefined, liveIntervalMs: 200, ...options },
  );
}

/** Reads a server-sent event stream until an event named `event` arrives; returns its data (lines joined). */
export async function firstEvent(response: Response, event: string, timeoutMs = 30_000): Promise<string> {
  const body = response.body;
  if (body === null) throw new Error('the event stream has no body');
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const deadline = Date.now() + timeoutMs;
  let buffered = '';
  try {
    while (Date.now() < deadline) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffered += decoder.decode(chunk.value, { stream: true });
      for (const block of buffered.split('\n\n').slice(0, -1)) {
        const lines = block.split('\n');
        if (lines.includes(`event: ${event}`)) {
          return lines
            .filter((line) => line.startsWith('data: ') || line === 'data:')
            .map((line) => line.replace(/^data: ?/, ''))
            .join('\n');
        }
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  throw new Error(`no "${event}" event within ${timeoutMs} ms; got: ${buffered.slice(0, 500)}`);
}

/** What a page or an event must never hold: the token, the S3 secret, a presigned URL's signature. */
export function secretsIn(text: string, env: Readonly<Record<string, string | undefined>>): string[] {
  const found: string[] = [];
  for (const name of ['REPLICATE_API_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'DASHBOARD_PASSWORD'] as const) {
    const value = env[name];
    if (value !== undefined && value.length >= 6 && text.includes(value)) found.push(name);
  }
  for (const marker of ['X-Amz-Signature', 'X-Amz-Credential', 'X-Amz-Security-Token']) {
    if (text.includes(marker)) found.push(marker);
  }
  return found;
}
