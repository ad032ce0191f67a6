/**
 * An ephemeral redis-server for the demo, the tests and the benchmarks: a free port on 127.0.0.1, a temp dir, no RDB
 * snapshots, `noeviction` (BullMQ refuses anything else), and a child process that never outlives the Node process that
 * started it.
 *
 * How it dies with us, without this module touching the process's signal handling:
 * - a normal exit, `process.exit()` or an uncaught exception: a `process.on('exit')` hook SIGKILLs every live server and
 *   removes the temp dirs this module made;
 * - SIGTERM/SIGINT left to their default action, or SIGKILL (no JavaScript runs): on Linux the server is started through
 *   `setpriv --pdeathsig SIGTERM`, so the kernel signals it when its parent dies. The server then also runs in its own
 *   process group, so a Ctrl-C in a terminal reaches only Node, which decides the order of shutdown (workers first).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { constants as fsConstants, rmSync } from 'node:fs';
import { access, mkdtemp, open, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export class LocalStackError extends Error {
  override readonly name = 'LocalStackError';
}

export interface RedisServerOptions {
  /** @defaultValue a free port found by binding 127.0.0.1:0 */
  readonly port?: number;
  /** A data dir the caller owns: kept on stop(). @defaultValue a new `depthq-redis-*` dir under os.tmpdir(), removed on stop() */
  readonly dir?: string;
  /** AOF with `appendfsync always`, so restart() keeps every acknowledged write. @defaultValue false */
  readonly appendOnly?: boolean;
  /** `requirepass`; sent to the server on stdin, never on its command line where `ps` would show it. */
  readonly password?: string;
  /** How long to wait for the first PING answer. @defaultValue 15000 */
  readonly startTimeoutMs?: number;
}

export interface RunningRedis {
  /** `redis://[:password@]127.0.0.1:port` */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  /** The current server's pid: it changes on restart(). */
  readonly pid: number;
  /** Graceful shutdown (SIGTERM, SIGKILL after a grace period), then removes the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** Simulates a crash: sends `signal` (default SIGKILL) and waits for the exit. The dir is kept for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and dir (stopping it first if it runs); with appendOnly the data persists. */
  restart(): Promise<void>;
}

export interface EnsureRedisServerOptions {
  /** Receives the one line announcing an install. @defaultValue a line on stderr */
  readonly onInstall?: (line: string) => void;
}

const REDIS_HOST = '127.0.0.1';
const EXTRA_BINARY_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/opt/homebrew/bin'];
const DEFAULT_START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 10_000;
const PORT_RETRIES = 5;
const LOG_TAIL_BYTES = 2_000;

const INSTALL_ADVICE =
  'redis-server was not found on PATH, /usr/bin or /usr/sbin. Install it ' +
  '(Debian/Ubuntu: `sudo apt-get install -y redis-server`; macOS: `brew install redis`) ' +
  'or set REDIS_URL to a Redis server you run yourself.';

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findExecutable(name: string): Promise<string | undefined> {
  const pathDirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '');
  for (const dir of [...pathDirs, ...EXTRA_BINARY_DIRS]) {
    const candidate = path.join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The path of `redis-server` (PATH, then /usr/bin, /usr/sbin, …), or undefined when it is not installed. */
export function findRedisServer(): Promise<string | undefined> {
  return findExecutable('redis-server');
}

async function canInstallWithApt(): Promise<boolean> {
  return (
    process.platform === 'linux' &&
    process.getuid?.() === 0 &&
    (await isExecutable('/usr/bin/apt-get')) &&
    (await fileExists('/etc/debian_version'))
  );
}

async function fileExists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

function runAptGet(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      '/usr/bin/apt-get',
      args,
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 },
      (error, _stdout, stderr) => {
        if (error) {
          reject(
            new LocalStackError(`apt-get ${args.join(' ')} failed: ${tail(String(stderr), 1_000)}`, { cause: error }),
          );
        } else {
          resolve();
        }
      },
    );
  });
}

async function locateOrInstallRedisServer(options: EnsureRedisServerOptions): Promise<string> {
  const found = await findRedisServer();
  if (found !== undefined) return found;
  if (!(await canInstallWithApt())) throw new LocalStackError(INSTALL_ADVICE);
  const announce = options.onInstall ?? ((line: string) => process.stderr.write(`${line}\n`));
  announce('depthq: redis-server is missing; installing it with `apt-get install -y redis-server` …');
  try {
    await runAptGet(['install', '-y', 'redis-server']);
  } catch {
    // A fresh Debian image has no package lists: the install fails until they are fetched once.
    await runAptGet(['update']);
    await runAptGet(['install', '-y', 'redis-server']);
  }
  const installed = await findRedisServer();
  if (installed === undefined)
    throw new LocalStackError(`apt-get installed redis-server but it is still not found. ${INSTALL_ADVICE}`);
  return installed;
}

let ensuring: Promise<string> | undefined;

/**
 * Returns the path of redis-server, installing it with apt-get when it is missing and this is Debian run as root.
 * Otherwise throws a LocalStackError that says how to install it. Concurrent callers in one process share one attempt.
 */
export function ensureRedisServer(options: EnsureRedisServerOptions = {}): Promise<string> {
  if (ensuring === undefined) {
    const attempt = locateOrInstallRedisServer(options);
    ensuring = attempt;
    // A failure is not remembered: the caller may fix the machine and try again.
    attempt.catch(() => {
      if (ensuring === attempt) ensuring = undefined;
    });
  }
  return ensuring;
}

/** A port that was free a moment ago on 127.0.0.1. Another process may still take it first: callers retry. */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, REDIS_HOST, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new LocalStackError('could not read the port of a probe socket'));
      });
    });
  });
}

// --- cleanup when the process exits without stop() -------------------------------------------------------------

const liveChildren = new Set<ChildProcess>();
const ownedDirs = new Set<string>();
let exitHookInstalled = false;

function killEverythingOnExit(): void {
  // Only synchronous work runs in an 'exit' listener: kill and rmSync.
  for (const child of liveChildren) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  for (const dir of ownedDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // The process is exiting; there is no one left to tell.
    }
  }
}

function updateExitHook(): void {
  const needed = liveChildren.size > 0 || ownedDirs.size > 0;
  if (needed && !exitHookInstalled) {
    process.on('exit', killEverythingOnExit);
    exitHookInstalled = true;
  } else if (!needed && exitHookInstalled) {
    process.off('exit', killEverythingOnExit);
    exitHookInstalled = false;
  }
}

// --- the server process ---------------------------------------------------------------------------------------------

/** Redis config syntax: double quotes with backslash escapes, so paths with spaces or quotes survive. */
function quoteConfigValue(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n').replace(/\r/g, '\\r')}"`;
}

interface ServerConfig {
  readonly port: number;
  readonly dir: string;
  readonly logFile: string;
  readonly appendOnly: boolean;
  readonly password: string | undefined;
}

function configText(config: ServerConfig): string {
  const lines = [
    `port ${config.port}`,
    `bind ${REDIS_HOST}`,
    'protected-mode yes',
    'daemonize no',
    'save ""',
    `appendonly ${config.appendOnly ? 'yes' : 'no'}`,
    ...(config.appendOnly ? ['appendfsync always'] : []),
    'maxmemory-policy noeviction',
    `dir ${quoteConfigValue(config.dir)}`,
    `logfile ${quoteConfigValue(config.logFile)}`,
    ...(config.password === undefined ? [] : [`requirepass ${quoteConfigValue(config.password)}`]),
  ];
  return `${lines.join('\n')}\n`;
}

function tail(text: string, length: number): string {
  return text.length <= length ? text : `…${text.slice(-length)}`;
}

async function readLogTail(logFile: string): Promise<string> {
  try {
    const handle = await open(logFile, 'r');
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, LOG_TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  } catch {
    return '';
  }
}

function encodeCommand(...parts: readonly string[]): string {
  return `*${parts.length}\r\n${parts.map((part) => `$${Buffer.byteLength(part)}\r\n${part}\r\n`).join('')}`;
}

/**
 * PING (after AUTH when a password is set), then INFO server over a raw socket. Ready means +PONG from *this* child:
 * a server of someone else's that took the port first would answer PING too, but with another process_id.
 */
function answersPing(port: number, password: string | undefined, expectedPid: number | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: REDIS_HOST, port });
    let received = '';
    const finish = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(1_000, () => finish(false));
    socket.once('error', () => finish(false));
    // A peer that hangs up without an answer (not redis, or redis shutting down) ends the attempt too.
    socket.once('close', () => finish(false));
    socket.once('connect', () => {
      const auth = password === undefined ? '' : encodeCommand('AUTH', password);
      socket.write(auth + encodeCommand('PING') + encodeCommand('INFO', 'server'));
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
      // While an AOF loads, PING answers -LOADING: not ready yet. A wrong password answers -WRONGPASS.
      if (received.startsWith('-') || (password !== undefined && received.startsWith('+OK\r\n-'))) {
        finish(false);
        return;
      }
      const pid = /\r\nprocess_id:(\d+)\r\n/.exec(received)?.[1];
      if (pid !== undefined) finish(received.includes('+PONG\r\n') && Number(pid) === expectedPid);
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class PortInUseError extends LocalStackError {}

interface StartedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
}

async function startServerProcess(
  binary: string,
  config: ServerConfig,
  startTimeoutMs: number,
  setpriv: string | undefined,
): Promise<StartedProcess> {
  // `redis-server -` reads its whole config from stdin before it starts.
  const command = setpriv ?? binary;
  const args = setpriv === undefined ? ['-'] : ['--pdeathsig', 'SIGTERM', '--', binary, '-'];
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: setpriv !== undefined });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = tail(output + chunk.toString('utf8'), LOG_TAIL_BYTES);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exitDescription: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitDescription = signal === null ? `exit code ${code}` : `signal ${signal}`;
      liveChildren.delete(child);
      updateExitHook();
      resolve();
    });
  });
  const spawnFailed = new Promise<Error>((resolve) => child.once('error', resolve));
  liveChildren.add(child);
  updateExitHook();
  // The server must not keep the event loop alive: the exit hook and pdeathsig end it with us.
  child.unref();
  child.stdin?.on('error', () => {
    // The server may exit before reading its config (EPIPE); its exit is reported below.
  });
  child.stdin?.end(configText(config));

  const describeFailure = async (what: string) => {
    const log = `${await readLogTail(config.logFile)}${output}`.trim();
    return `redis-server on ${REDIS_HOST}:${config.port} ${what}${log === '' ? '' : `; its log ends with:\n${log}`}`;
  };

  const deadline = Date.now() + startTimeoutMs;
  let spawnError: Error | undefined;
  void spawnFailed.then((error) => {
    spawnError = error;
  });
  while (true) {
    if (spawnError !== undefined) {
      // No process started, so no 'exit' will come to untrack it.
      liveChildren.delete(child);
      updateExitHook();
      throw new LocalStackError(`could not run ${command}: ${spawnError.message}`, { cause: spawnError });
    }
    if (exitDescription !== undefined) {
      const message = await describeFailure(`exited during start-up (${exitDescription})`);
      if (/Address already in use/i.test(message)) throw new PortInUseError(message);
      throw new LocalStackError(message);
    }
    if (await answersPing(config.port, config.password, child.pid)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new LocalStackError(await describeFailure(`did not answer PING within ${startTimeoutMs} ms`));
    }
    await delay(50);
  }
  // Past start-up it writes to its log file only; stop holding the pipes open for the event loop.
  for (const stream of [child.stdout, child.stderr]) {
    if (stream instanceof net.Socket) stream.unref();
  }
  return { child, exited };
}

/** util-linux's setpriv, whose --pdeathsig makes a child die with its parent (Linux only). */
export async function findSetpriv(): Promise<string | undefined> {
  if (process.platform !== 'linux') return undefined;
  for (const candidate of ['/usr/bin/setpriv', '/bin/setpriv']) {
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

class RedisServer implements RunningRedis {
  readonly host = REDIS_HOST;
  #process: StartedProcess;
  #stopping: Promise<void> | undefined;

  constructor(
    private readonly binary: string,
    private readonly setpriv: string | undefined,
    private readonly config: ServerConfig,
    private readonly ownsDir: boolean,
    private readonly startTimeoutMs: number,
    started: StartedProcess,
  ) {
    this.#process = started;
  }

  get port(): number {
    return this.config.port;
  }

  get dir(): string {
    return this.config.dir;
  }

  get logFile(): string {
    return this.config.logFile;
  }

  get pid(): number {
    return this.#process.child.pid ?? -1;
  }

  get url(): string {
    const auth = this.config.password === undefined ? '' : `:${encodeURIComponent(this.config.password)}@`;
    return `redis://${auth}${REDIS_HOST}:${this.config.port}`;
  }

  async #terminate(signal: NodeJS.Signals): Promise<void> {
    const { child, exited } = this.#process;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS);
    });
    const outcome = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#terminate('SIGTERM');
      if (this.ownsDir) {
        await rm(this.config.dir, { recursive: true, force: true });
        ownedDirs.delete(this.config.dir);
        updateExitHook();
      }
    })();
    return this.#stopping;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.#terminate(signal);
  }

  async restart(): Promise<void> {
    if (this.#stopping !== undefined) throw new LocalStackError('redis-server was stopped; start a new one instead');
    await this.#terminate('SIGTERM');
    this.#process = await startServerProcess(this.binary, this.config, this.startTimeoutMs, this.setpriv);
  }
}

/**
 * Starts a throwaway redis-server on 127.0.0.1 and resolves once it answers PING.
 * Throws a LocalStackError (with the tail of the server's log) when it cannot start.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RunningRedis> {
  const binary = await ensureRedisServer();
  const setpriv = await findSetpriv();
  const ownsDir = options.dir === undefined;
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'depthq-redis-')));
  if (ownsDir) {
    ownedDirs.add(dir);
    updateExitHook();
  }
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const removeOwnedDir = async () => {
    if (!ownsDir) return;
    await rm(dir, { recursive: true, force: true });
    ownedDirs.delete(dir);
    updateExitHook();
  };
  try {
    for (let attempt = 1; ; attempt++) {
      const config: ServerConfig = {
        port: options.port ?? (await findFreePort()),
        dir,
        logFile: path.join(dir, 'redis-server.log'),
        appendOnly: options.appendOnly ?? false,
        password: options.password,
      };
      try {
        const started = await startServerProcess(binary, config, startTimeoutMs, setpriv);
        return new RedisServer(binary, setpriv, config, ownsDir, startTimeoutMs, started);
      } catch (error) {
        // Another process can take a free port between our probe and the server's bind; a chosen port is never swapped.
        const retry = error instanceof PortInUseError && options.port === undefined && attempt < PORT_RETRIES;
        if (!retry) throw error;
      }
    }
  } catch (error) {
    await removeOwnedDir();
    throw error;
  }
}
