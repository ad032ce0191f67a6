/**
 * An HTTP proxy that adds real latency in front of a local server (s3rver, the simulator), so a crash test can widen
 * the window it kills a worker in — "the output upload is in flight" — without any switch in production code. The
 * worker is simply pointed at the proxy (S3_ENDPOINT, the simulator's `publicUrl`), and the test watches which requests
 * are held or in flight.
 *
 * Requests are forwarded byte for byte with their own Host header, so SigV4 signatures (and presigned URLs) made for
 * the proxy's address still verify at the server behind it. A client that goes away (a SIGKILLed worker) has its
 * request dropped: if it was still held, the server never sees it.
 *
 * `setDown(true)` is an outage of the server behind (a dead S3, an unreachable API): every connection the proxy holds is
 * reset — idle keep-alive ones too, so no pooled socket slips through — every request in flight is cut (held ones never
 * reach the server; forwarded ones are aborted upstream as well), and every new connection is reset as soon as it is
 * accepted. Clients see ECONNRESET (or "socket hang up"), never an HTTP answer. `setDown(false)` ends the outage:
 * new connections are forwarded again.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ProxiedRequestHead {
  readonly method: string;
  /** Path and query string, as the client sent them. */
  readonly path: string;
}

/**
 * `aborted`: the client went away before its answer was complete; `failed`: the server behind could not be reached (the
 * client got a 502); `dropped`: cut by an outage (`setDown(true)`) while held or forwarded.
 */
export type ProxiedRequestState = 'held' | 'forwarded' | 'completed' | 'aborted' | 'failed' | 'dropped';

export interface ProxiedRequest extends ProxiedRequestHead {
  readonly id: number;
  readonly receivedAt: number;
  /** The delay this request was held for before it was forwarded. */
  readonly delayMs: number;
  readonly state: ProxiedRequestState;
  /** The server's status code, once it answered. */
  readonly status?: number;
}

/** How long to hold a request before forwarding it; decided once, when its head arrives. */
export type DelayRule = (request: ProxiedRequestHead) => number;

export interface LatencyProxyOptions {
  /** The server behind the proxy, e.g. `http://127.0.0.1:4568`. */
  readonly target: string;
  /** @defaultValue no delay */
  readonly delayMs?: DelayRule;
}

export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`: what clients use instead of the target. */
  readonly url: string;
  readonly port: number;
  /** Every request seen so far, oldest first (a snapshot). */
  requests(): readonly ProxiedRequest[];
  /** Requests received and not yet answered in full: held, or forwarded and waiting for the server. */
  inFlight(): readonly ProxiedRequest[];
  /** Replaces the delay rule for requests that arrive from now on. */
  setDelay(rule: DelayRule): void;
  /**
   * Starts (`true`) or ends (`false`) an outage: while down, open connections and requests in flight are cut at once and
   * new connections are reset when accepted; once up, forwarding resumes for new connections.
   */
  setDown(down: boolean): void;
  isDown(): boolean;
  /** Connections reset because the proxy was down: at the start of an outage, or when accepted during it. */
  droppedConnections(): number;
  close(): Promise<void>;
}

type MutableRequestRecord = { -readonly [K in keyof ProxiedRequest]: ProxiedRequest[K] };

/** Headers that describe one hop, not the request: Node sets its own for the upstream connection. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'expect']);

function forwardedHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const target = new URL(options.target);
  let rule: DelayRule = options.delayMs ?? (() => 0);
  const seen: MutableRequestRecord[] = [];
  const timers = new Set<NodeJS.Timeout>();
  /** Client connections open now; reset at the start of an outage. */
  const sockets = new Set<Socket>();
  /** How to cut each request in flight (held or forwarded), by record id. */
  const cutters = new Map<number, () => void>();
  let sequence = 0;
  let down = false;
  let dropped = 0;

  /** An RST, as from a host whose server died: the client sees ECONNRESET rather than a clean end of stream. */
  const reset = (socket: Socket) => {
    if (!socket.destroyed) socket.resetAndDestroy();
  };

  const server = createServer({ keepAlive: true }, (request, response) => {
    if (down) {
      // A request parsed on a connection accepted just before the outage began: cut like any other.
      reset(request.socket);
      return;
    }
    const head: ProxiedRequestHead = { method: request.method ?? 'GET', path: request.url ?? '/' };
    const delayMs = Math.max(0, rule(head));
    const record: MutableRequestRecord = { id: ++sequence, ...head, receivedAt: Date.now(), delayMs, state: 'held' };
    seen.push(record);
    let upstreamRequest: ReturnType<typeof httpRequest> | undefined;

    const cut = () => {
      cutters.delete(record.id);
      clearTimeout(timer);
      timers.delete(timer);
      record.state = 'dropped';
      upstreamRequest?.destroy();
      reset(request.socket);
    };
    cutters.set(record.id, cut);

    response.once('close', () => {
      cutters.delete(record.id);
      clearTimeout(timer);
      timers.delete(timer);
      if (record.state === 'dropped') return;
      if (response.writableFinished) {
        if (record.state !== 'failed') record.state = 'completed';
        return;
      }
      // The client went away before its answer was complete: the server must not go on working for nobody.
      record.state = 'aborted';
      upstreamRequest?.destroy();
    });

    const forward = () => {
      timers.delete(timer);
      record.state = 'forwarded';
      upstreamRequest = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method: head.method,
          path: head.path,
          headers: forwardedHeaders(request.headers),
          agent: false,
        },
        (upstreamResponse) => {
          const status = upstreamResponse.statusCode ?? 502;
          record.status = status;
          response.writeHead(status, forwardedHeaders(upstreamResponse.headers));
          upstreamResponse.pipe(response);
          upstreamResponse.once('error', () => response.destroy());
        },
      );
      upstreamRequest.once('error', (error) => {
        if (record.state === 'aborted' || record.state === 'dropped') return;
        record.state = 'failed';
        if (response.headersSent) {
          response.destroy();
          return;
        }
        response.writeHead(502, { 'content-type': 'text/plain' });
        response.end(`latency proxy: ${target.host} failed: ${error.message}\n`);
      });
      request.pipe(upstreamRequest);
    };
    // The body waits in the socket (backpressure) while the request is held.
    const timer = setTimeout(forward, delayMs);
    timers.add(timer);
  });

  server.on('connection', (socket: Socket) => {
    if (down) {
      dropped += 1;
      reset(socket);
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests: () => seen.map((record) => ({ ...record })),
    inFlight: () =>
      seen.filter((record) => record.state === 'held' || record.state === 'forwarded').map((record) => ({ ...record })),
    setDelay(next) {
      rule = next;
    },
    setDown(next) {
      if (next === down) return;
      down = next;
      if (!down) return;
      for (const cut of [...cutters.values()]) cut();
      for (const socket of [...sockets]) {
        dropped += 1;
        reset(socket);
      }
      sockets.clear();
    },
    isDown: () => down,
    droppedConnections: () => dropped,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
