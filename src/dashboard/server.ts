/**
 * `depthq dashboard`'s server: opens what the app reads (a Redis connection, the ledger, the render queue, an S3
 * client), listens on host:port, and closes everything in order — live streams first, so `close()` does not wait on
 * open pages, then the socket, then the queue and Redis.
 */
import type { AddressInfo } from 'node:net';
import type { S3Client } from '@aws-sdk/client-s3';
import { serve } from '@hono/node-server';
import type { Config } from '../config/index.js';
import { UsageError } from '../core/errors.js';
import type { Logger } from '../logging/logger.js';
import { providerForConfig } from '../providers/provider-for-config.js';
import { openRunContext } from '../runs/run-context.js';
import { s3ClientForConfig } from '../storage/s3-client.js';
import { createDashboardApp } from './app.js';
import { credentialsFor } from './auth.js';

export interface DashboardServerOptions {
  readonly config: Config;
  /** @defaultValue '127.0.0.1' */
  readonly host?: string;
  /** 0 picks a free port. @defaultValue 3000 */
  readonly port?: number;
  readonly allowActions?: boolean;
  readonly liveIntervalMs?: number;
  readonly logger?: Logger;
  /** The S3 client thumbnails are read with, owned by the caller (the demo's, which carries s3rver's keys); by default
   * one from config and the SDK's credential chain, closed with the server. */
  readonly s3?: S3Client;
}

export interface RunningDashboard {
  /** `http://host:port`, with the port actually bound. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function urlOf(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export async function startDashboardServer(options: DashboardServerOptions): Promise<RunningDashboard> {
  const host = options.host ?? '127.0.0.1';
  // Refuses before opening anything: a refused start leaves nothing to close.
  const credentials = credentialsFor(host, options.config.dashboard);
  const context = await openRunContext(options.config, 'depthq-dashboard');
  const ownS3 = options.s3 === undefined;
  const s3 = options.s3 ?? s3ClientForConfig(options.config);
  const shutdown = new AbortController();
  const logger = options.logger;
  const app = createDashboardApp(
    {
      config: options.config,
      redis: context.redis,
      ledger: context.ledger,
      queue: context.queue,
      s3,
      providerForCancel: () => providerForConfig(options.config),
    },
    {
      allowActions: options.allowActions === true,
      credentials,
      signal: shutdown.signal,
      ...(options.liveIntervalMs === undefined ? {} : { liveIntervalMs: options.liveIntervalMs }),
      onError: (error) => logger?.error({ err: error }, 'dashboard request failed'),
    },
  );
  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
      const listening = serve({ fetch: app.fetch, hostname: host, port: options.port ?? 3000 }, () =>
        resolve(listening),
      );
      listening.once('error', reject);
    });
  } catch (error) {
    if (ownS3) s3.destroy();
    await context.close();
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new UsageError(
        `cannot listen on ${urlOf(host, options.port ?? 3000)} (${code}): choose another --port or --host`,
      );
    }
    throw error;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: urlOf(host, port),
    port,
    close() {
      closing ??= (async () => {
        shutdown.abort();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          // Keep-alive sockets of idle browsers would hold close() open.
          if ('closeAllConnections' in server && typeof server.closeAllConnections === 'function') {
            server.closeAllConnections();
          }
        });
        if (ownS3) s3.destroy();
        await context.close();
      })();
      return closing;
    },
  };
}
