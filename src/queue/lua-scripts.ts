/**
 * How depthq defines its Lua scripts on a connection, one way for all of them (the run ledger's in
 * src/ledger/ledger-scripts.ts, the fenced checkpoint write in fenced-checkpoint.ts, the queue's wait in rate-limit.ts):
 * each is a named `LuaScript` whose Lua opens with a header listing its KEYS and ARGV (bullmq style), registered with
 * ioredis `defineCommand` (EVALSHA, falling back to EVAL) and called as the command of that name. No inline `eval`.
 */
import type { Redis } from 'ioredis';

export interface LuaScript {
  /** The ioredis command name; prefixed so it cannot collide with BullMQ's commands on a shared connection. */
  readonly name: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

function definesAll<Commands>(redis: Redis, scripts: readonly LuaScript[]): redis is Redis & Commands {
  return scripts.every((script) => typeof Reflect.get(redis, script.name) === 'function');
}

/**
 * The connection with `scripts` defined on it as commands; a script already defined on the same connection is skipped.
 * `Commands` lists the commands' signatures (keys first, then arguments, as the scripts' headers list them); `what`
 * names them in the error thrown if ioredis did not add them.
 */
export function withLuaScripts<Commands>(redis: Redis, scripts: readonly LuaScript[], what: string): Redis & Commands {
  for (const script of scripts) {
    if (typeof Reflect.get(redis, script.name) !== 'function') {
      redis.defineCommand(script.name, { lua: script.lua, numberOfKeys: script.numberOfKeys });
    }
  }
  if (!definesAll<Commands>(redis, scripts)) {
    throw new Error(`ioredis defineCommand did not add ${what} to the connection`);
  }
  return redis;
}
