/**
 * Live pages: a server-sent event stream per open page. Every `intervalMs` the stream renders the page's live region
 * (from `RunDataCache`, so many open pages cost one ledger scan) and sends it as an `update` event when it changed; the
 * page's script swaps it in. The markup is rendered and escaped on the server, exactly as the page itself was, and
 * holds no secret (see `scrubSecrets`). A comment line every `keepAliveMs` keeps proxies from closing an idle stream.
 * The stream ends when the browser leaves, when the run disappears (`gone`), or when the server shuts down (`signal`).
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';

export interface EventStreamOptions {
  /** @defaultValue 1000 */
  readonly intervalMs?: number;
  /** @defaultValue 15000 */
  readonly keepAliveMs?: number;
  /** Aborted when the server closes: streams end so `close()` does not wait on open pages. */
  readonly signal?: AbortSignal;
  /** Called with a failed read (Redis unreachable for a moment); the stream tries again at the next tick. */
  readonly onReadError?: (error: unknown) => void;
}

/** `render` returns the live region's markup, or `undefined` when its subject is gone. */
export function streamLiveRegion(
  c: Context,
  render: () => Promise<string | undefined>,
  options: EventStreamOptions = {},
): Response {
  const intervalMs = options.intervalMs ?? 1000;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  return streamSSE(c, async (stream) => {
    let closed = false;
    stream.onAbort(() => {
      closed = true;
    });
    const onShutdown = () => {
      closed = true;
    };
    options.signal?.addEventListener('abort', onShutdown, { once: true });
    try {
      let last: string | undefined;
      let lastWriteMs = Date.now();
      // The browser reconnects after this long if the stream drops (a restart of the dashboard).
      await stream.write(`retry: ${Math.max(1000, intervalMs * 2)}\n\n`);
      while (!closed && options.signal?.aborted !== true) {
        let fragment: string | undefined;
        let failed = false;
        try {
          fragment = await render();
        } catch (error) {
          failed = true;
          options.onReadError?.(error);
        }
        if (!failed) {
          if (fragment === undefined) {
            await stream.writeSSE({ event: 'gone', data: 'gone' });
            break;
          }
          if (fragment !== last) {
            await stream.writeSSE({ event: 'update', data: fragment });
            last = fragment;
            lastWriteMs = Date.now();
          }
        }
        if (Date.now() - lastWriteMs >= keepAliveMs) {
          await stream.write(': keep-alive\n\n');
          lastWriteMs = Date.now();
        }
        await stream.sleep(intervalMs);
      }
    } finally {
      options.signal?.removeEventListener('abort', onShutdown);
    }
  });
}
