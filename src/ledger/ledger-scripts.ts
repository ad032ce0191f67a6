/**
 * The run ledger's Lua scripts: every change that must be atomic across worker processes (a budget check and the
 * reservation it allows, a settlement and the counters it moves, a result row and its status counter) happens inside
 * one script, so no interleaving of workers can grant more than the budget or count a job twice.
 *
 * Conventions shared by the scripts (bullmq style: each header lists KEYS and ARGV):
 * - Money arrives and is written as decimal integer strings and changes only through HINCRBY (64-bit integers).
 *   Lua numbers are doubles and `redis.call` formats them in ways HINCRBY can refuse, so amounts are never turned back
 *   from numbers into strings; numbers are used only to compare.
 * - HINCRBY refuses "-0", so a zero amount is never subtracted.
 * - Every script first checks that the run's meta hash exists: a typo in a run id must fail loudly, not reserve against
 *   an absent (that is, unlimited) budget.
 * - Replies are flat arrays of strings (Lua `false` becomes a null reply), so one reply parser serves all scripts.
 * - The writes a render job makes (reserve, settle, release, recordResult) also exist **fenced** (`<name>Fenced`): one
 *   more key, the job's BullMQ lock `<prefix>:<queue>:<jobId>:lock`, last in KEYS, and the worker's lock token last in
 *   ARGV. The script writes nothing and replies `{'lock-lost'}` unless the lock still holds that token — checked in the
 *   same atomic step as the write, exactly as the fenced checkpoint write (src/queue/fenced-checkpoint.ts). CLI callers
 *   (ingest, cancel, retry) hold no lock and use the plain scripts. A script's keys must hash to one slot only in Redis
 *   Cluster; depthq does not support Cluster (its ledger keys and BullMQ's lock keys do not share a hash tag).
 *
 * The Lua is kept in this module, not in `.lua` files, so tsx, the compiled build and the Docker image all ship it
 * without a copy step. Scripts are defined on the connection as commands by src/queue/lua-scripts.ts (ioredis
 * `defineCommand`: EVALSHA, falling back to EVAL), as the fenced checkpoint write's is.
 */
import type { Redis } from 'ioredis';
import { type LuaScript, withLuaScripts } from '../queue/lua-scripts.js';

/** Appended to scripts that reply with the run's money: `budget|null, reserved, spent, possiblyBilled`. */
const moneyStateReply = `
local function moneyState(moneyKey)
  local state = redis.call('HMGET', moneyKey, 'budget', 'reserved', 'spent', 'possiblyBilled')
  return state[1], state[2] or '0', state[3] or '0', state[4] or '0'
end
`;

/** The reply of the scripts that change money: an outcome, its detail, then the run's money (KEYS[2] is the money hash). */
const outcomeWithMoneyReply = `
local function reply(outcome, detail)
  local budget, reserved, spent, possiblyBilled = moneyState(KEYS[2])
  return {outcome, detail, budget, reserved, spent, possiblyBilled}
end
`;

const createRun: LuaScript = {
  name: 'depthqLedgerCreateRun',
  numberOfKeys: 3,
  lua: `--[[
  Creates a run's ledger (meta, money, index entry) unless the run exists.

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash
    KEYS[3] runs index set

    ARGV[1] run id
    ARGV[2] budget in micro-dollars, '' for unlimited
    ARGV[3..] meta field, value, field, value …

  Output:
    {'created'}
    {'exists', field, value, …}   the stored meta, for the caller to compare
]]
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 1 then
  local stored = rcall('HGETALL', KEYS[1])
  table.insert(stored, 1, 'exists')
  return stored
end
rcall('HSET', KEYS[1], unpack(ARGV, 3))
rcall('HSET', KEYS[2], 'reserved', '0', 'spent', '0', 'possiblyBilled', '0')
if ARGV[2] == '' then
  rcall('HDEL', KEYS[2], 'budget')
else
  rcall('HSET', KEYS[2], 'budget', ARGV[2])
end
rcall('SADD', KEYS[3], ARGV[1])
return {'created'}
`,
};

const reserve: LuaScript = {
  name: 'depthqLedgerReserve',
  numberOfKeys: 4,
  lua: `--[[
  Reserves a job's price against the run's budget, once per job.

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash
    KEYS[3] reservations hash (job id -> micro-dollars)
    KEYS[4] settlements hash (job id -> settlement JSON)

    ARGV[1] job id
    ARGV[2] amount in micro-dollars (decimal integer string, >= 0)

  Output: {outcome, detail, budget|nil, reserved, spent, possiblyBilled}
    outcome 'no-run'    the run does not exist (nothing else in the reply)
            'held'      the job already holds a reservation; detail = its amount; nothing changed
            'settled'   the job was settled already; detail = the settlement JSON; nothing changed
            'budget'    reserved + spent + possiblyBilled + amount > budget; nothing changed
            'reserved'  the reservation was recorded; detail = amount
]]
local rcall = redis.call
${moneyStateReply}
${outcomeWithMoneyReply}
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local jobId = ARGV[1]
local amount = ARGV[2]

local held = rcall('HGET', KEYS[3], jobId)
if held then return reply('held', held) end
local settlement = rcall('HGET', KEYS[4], jobId)
if settlement then return reply('settled', settlement) end

local budget, reserved, spent, possiblyBilled = moneyState(KEYS[2])
if budget then
  local committed = tonumber(reserved) + tonumber(spent) + tonumber(possiblyBilled)
  if committed + tonumber(amount) > tonumber(budget) then return reply('budget', '') end
end
rcall('HSET', KEYS[3], jobId, amount)
if amount ~= '0' then rcall('HINCRBY', KEYS[2], 'reserved', amount) end
return reply('reserved', amount)
`,
};

const settle: LuaScript = {
  name: 'depthqLedgerSettle',
  numberOfKeys: 4,
  lua: `--[[
  Settles a job once: drops its reservation (if any) and adds what it spent and what may have been billed.

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash
    KEYS[3] reservations hash
    KEYS[4] settlements hash

    ARGV[1] job id
    ARGV[2] spent in micro-dollars (decimal integer string, >= 0)
    ARGV[3] possiblyBilled in micro-dollars (decimal integer string, >= 0)
    ARGV[4] settled-at time, ISO 8601 (no quotes or backslashes)

  Output: {outcome, settlement JSON, budget|nil, reserved, spent, possiblyBilled}
    outcome 'no-run'    the run does not exist (nothing else in the reply)
            'already'   the job was settled before; the first settlement is returned; nothing changed
            'settled'   this call settled it
]]
local rcall = redis.call
${moneyStateReply}
${outcomeWithMoneyReply}
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local jobId = ARGV[1]

local first = rcall('HGET', KEYS[4], jobId)
if first then return reply('already', first) end

local held = rcall('HGET', KEYS[3], jobId)
local released = held or '0'
if held then
  rcall('HDEL', KEYS[3], jobId)
  if held ~= '0' then rcall('HINCRBY', KEYS[2], 'reserved', '-' .. held) end
end
rcall('HINCRBY', KEYS[2], 'spent', ARGV[2])
rcall('HINCRBY', KEYS[2], 'possiblyBilled', ARGV[3])
-- Built from the decimal strings themselves: cjson would print large integers in exponent form.
local settlement = '{"spent":' .. ARGV[2] .. ',"possiblyBilled":' .. ARGV[3] ..
  ',"releasedReservation":' .. released .. ',"settledAt":"' .. ARGV[4] .. '"}'
rcall('HSET', KEYS[4], jobId, settlement)
return reply('settled', settlement)
`,
};

const reopenSettlement: LuaScript = {
  name: 'depthqLedgerReopenSettlement',
  numberOfKeys: 4,
  lua: `--[[
  Reopens a job's settlement for a retry that resumes the same prediction: what the settlement counted (spent and
  possibly billed) becomes the job's reservation again. The money stays committed against the budget, and the retried
  job settles it once more by what its prediction turns out to be, so it is never counted twice nor handed back.

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash
    KEYS[3] reservations hash
    KEYS[4] settlements hash

    ARGV[1] job id

  Output: {outcome, detail, budget|nil, reserved, spent, possiblyBilled}
    outcome 'no-run'    the run does not exist (nothing else in the reply)
            'none'      the job has no settlement; nothing changed
            'reopened'  detail = the settlement that was reopened (JSON)
]]
local rcall = redis.call
${moneyStateReply}
${outcomeWithMoneyReply}
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local jobId = ARGV[1]

local settlement = rcall('HGET', KEYS[4], jobId)
if not settlement then return reply('none', '') end
-- Matched as decimal strings (see the conventions above): the settlement JSON is written by depthqLedgerSettle.
local spent = string.match(settlement, '"spent":(%d+)') or '0'
local possiblyBilled = string.match(settlement, '"possiblyBilled":(%d+)') or '0'
rcall('HDEL', KEYS[4], jobId)
if not rcall('HGET', KEYS[3], jobId) then rcall('HSET', KEYS[3], jobId, '0') end
if spent ~= '0' then
  rcall('HINCRBY', KEYS[2], 'spent', '-' .. spent)
  rcall('HINCRBY', KEYS[2], 'reserved', spent)
  rcall('HINCRBY', KEYS[3], jobId, spent)
end
if possiblyBilled ~= '0' then
  rcall('HINCRBY', KEYS[2], 'possiblyBilled', '-' .. possiblyBilled)
  rcall('HINCRBY', KEYS[2], 'reserved', possiblyBilled)
  rcall('HINCRBY', KEYS[3], jobId, possiblyBilled)
end
return reply('reopened', settlement)
`,
};

const release: LuaScript = {
  name: 'depthqLedgerRelease',
  numberOfKeys: 3,
  lua: `--[[
  Drops a job's reservation without spending anything (failed before create, canceled before start).

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash
    KEYS[3] reservations hash

    ARGV[1] job id

  Output: {outcome, amount, budget|nil, reserved, spent, possiblyBilled}
    outcome 'no-run'    the run does not exist (nothing else in the reply)
            'none'      the job held no reservation; nothing changed
            'released'  amount = what was released
]]
local rcall = redis.call
${moneyStateReply}
${outcomeWithMoneyReply}
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local held = rcall('HGET', KEYS[3], ARGV[1])
if not held then return reply('none', '') end
rcall('HDEL', KEYS[3], ARGV[1])
if held ~= '0' then rcall('HINCRBY', KEYS[2], 'reserved', '-' .. held) end
return reply('released', held)
`,
};

const setBudget: LuaScript = {
  name: 'depthqLedgerSetBudget',
  numberOfKeys: 2,
  lua: `--[[
  Sets or removes a run's budget. Lowering it below what is committed is allowed: nothing new reserves.

  Input:
    KEYS[1] meta hash
    KEYS[2] money hash

    ARGV[1] budget in micro-dollars, '' for unlimited

  Output: {outcome, '', budget|nil, reserved, spent, possiblyBilled}
    outcome 'no-run' (nothing else in the reply) | 'set'
]]
local rcall = redis.call
${moneyStateReply}
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
if ARGV[1] == '' then
  rcall('HDEL', KEYS[2], 'budget')
else
  rcall('HSET', KEYS[2], 'budget', ARGV[1])
end
local budget, reserved, spent, possiblyBilled = moneyState(KEYS[2])
return {'set', '', budget, reserved, spent, possiblyBilled}
`,
};

const recordResult: LuaScript = {
  name: 'depthqLedgerRecordResult',
  numberOfKeys: 3,
  lua: `--[[
  Writes a job's result row and moves its status counter with it, so counters always match the rows.

  Input:
    KEYS[1] meta hash
    KEYS[2] results hash (job id -> row JSON)
    KEYS[3] counters hash (status -> count, plus 'total')

    ARGV[1] job id
    ARGV[2] the row's status (the same as the JSON's "status")
    ARGV[3] the row as JSON
    ARGV[4] '' to write whatever is stored; or the row the job must still have, as JSON (rows are always written as
            the same canonical JSON of the same schema, so equal rows are equal strings): a compare-and-set

  Output:
    {'no-run'}
    {'new', ''}                  first row of this job: +1 status, +1 total
    {'updated', previousStatus}  previousStatus is '' when the stored row had no readable status
    {'changed', ''}              ARGV[4] was given and the stored row is another one (or none): nothing written
]]
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local jobId = ARGV[1]
local status = ARGV[2]

local old = rcall('HGET', KEYS[2], jobId)
if ARGV[4] ~= '' and old ~= ARGV[4] then return {'changed', ''} end
rcall('HSET', KEYS[2], jobId, ARGV[3])
if not old then
  rcall('HINCRBY', KEYS[3], status, 1)
  rcall('HINCRBY', KEYS[3], 'total', 1)
  return {'new', ''}
end

local decoded, row = pcall(cjson.decode, old)
local previous = nil
if decoded and type(row) == 'table' and type(row['status']) == 'string' then previous = row['status'] end
if previous ~= status then
  -- A row whose old status cannot be read is still counted once, under its new status.
  if previous then rcall('HINCRBY', KEYS[3], previous, -1) end
  rcall('HINCRBY', KEYS[3], status, 1)
end
return {'updated', previous or ''}
`,
};

const registerJobs: LuaScript = {
  name: 'depthqLedgerRegisterJobs',
  numberOfKeys: 4,
  lua: `--[[
  Records many 'queued' rows at once; existing rows are left as they are (HSETNX) and only new ones are counted. Each
  job's payload is kept beside its row (HSETNX too: a job does not change once enqueued; a reseed writes it anew).

  Input:
    KEYS[1] meta hash
    KEYS[2] results hash
    KEYS[3] counters hash
    KEYS[4] payloads hash

    ARGV[1], ARGV[2], ARGV[3]  job id, row JSON (status 'queued'), payload JSON or '' (none)
    ARGV[4], ARGV[5], ARGV[6]  …

  Output:
    {'no-run'}
    {'registered', count}  count = rows that did not exist before (decimal string)
]]
local rcall = redis.call
if rcall('EXISTS', KEYS[1]) == 0 then return {'no-run'} end
local added = 0
for index = 1, #ARGV, 3 do
  added = added + rcall('HSETNX', KEYS[2], ARGV[index], ARGV[index + 1])
  if ARGV[index + 2] ~= '' then rcall('HSETNX', KEYS[4], ARGV[index], ARGV[index + 2]) end
end
if added > 0 then
  rcall('HINCRBY', KEYS[3], 'queued', added)
  rcall('HINCRBY', KEYS[3], 'total', added)
end
return {'registered', tostring(added)}
`,
};

const setRunState: LuaScript = {
  name: 'depthqLedgerSetRunState',
  numberOfKeys: 2,
  lua: `--[[
  Sets the run's state in one step, so a pause racing a cancel can never bring a canceled run back: 'canceled' is
  final. Any state but 'paused' clears the pause's cause.

  Input:
    KEYS[1] run state string
    KEYS[2] pause cause hash

    ARGV[1] the new state ('active', 'paused' or 'canceled')

  Output:
    'canceled'  the run was canceled already; nothing changed
    ARGV[1]     the state was set
]]
if redis.call('GET', KEYS[1]) == 'canceled' then return 'canceled' end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[1] ~= 'paused' then redis.call('DEL', KEYS[2]) end
return ARGV[1]
`,
};

const pauseFor: LuaScript = {
  name: 'depthqLedgerPauseFor',
  numberOfKeys: 2,
  lua: `--[[
  Pauses the run for a cause only a person can fix, keeping the cause beside the state. A canceled run stays canceled.

  Input:
    KEYS[1] run state string
    KEYS[2] pause cause hash

    ARGV[1] the cause's reason
    ARGV[2] the cause's message
    ARGV[3] when (ISO 8601)

  Output: {previous state, fresh}
    fresh '1'  the run was not paused for this reason before
          '0'  it was (or the run is canceled: nothing changed)
]]
local state = redis.call('GET', KEYS[1]) or 'active'
if state == 'canceled' then return {state, '0'} end
local had = redis.call('HGET', KEYS[2], 'reason')
redis.call('SET', KEYS[1], 'paused')
redis.call('HSET', KEYS[2], 'reason', ARGV[1], 'message', ARGV[2], 'at', ARGV[3])
if state == 'paused' and had == ARGV[1] then return {state, '0'} end
return {state, '1'}
`,
};

/**
 * The script guarded by the job's lock: KEYS[#KEYS] is the lock key, ARGV[#ARGV] the worker's token (both appended
 * after the script's own, so its body reads its keys and arguments where it always did).
 */
function fenced(script: LuaScript): LuaScript {
  return {
    name: `${script.name}Fenced`,
    numberOfKeys: script.numberOfKeys + 1,
    lua: `-- Fenced: nothing is written unless the job's lock (last key) still holds the worker's token (last argument).
if redis.call('GET', KEYS[#KEYS]) ~= ARGV[#ARGV] then return {'lock-lost'} end
${script.lua}`,
  };
}

export const ledgerScripts = {
  createRun,
  reserve,
  settle,
  reopenSettlement,
  release,
  setBudget,
  recordResult,
  registerJobs,
  setRunState,
  pauseFor,
  reserveFenced: fenced(reserve),
  settleFenced: fenced(settle),
  releaseFenced: fenced(release),
  recordResultFenced: fenced(recordResult),
} as const satisfies Record<string, LuaScript>;

type ScriptReply = Promise<unknown>;

/** The commands `defineCommand` adds: keys first, then arguments, as the headers above list them. */
export interface LedgerCommands {
  depthqLedgerCreateRun(
    meta: string,
    money: string,
    runs: string,
    run: string,
    budget: string,
    ...fields: string[]
  ): ScriptReply;
  depthqLedgerReserve(
    meta: string,
    money: string,
    reservations: string,
    settlements: string,
    jobId: string,
    amount: string,
  ): ScriptReply;
  depthqLedgerSettle(
    meta: string,
    money: string,
    reservations: string,
    settlements: string,
    jobId: string,
    spent: string,
    possiblyBilled: string,
    settledAt: string,
  ): ScriptReply;
  depthqLedgerReopenSettlement(
    meta: string,
    money: string,
    reservations: string,
    settlements: string,
    jobId: string,
  ): ScriptReply;
  depthqLedgerRelease(meta: string, money: string, reservations: string, jobId: string): ScriptReply;
  depthqLedgerSetBudget(meta: string, money: string, budget: string): ScriptReply;
  depthqLedgerRecordResult(
    meta: string,
    results: string,
    counters: string,
    jobId: string,
    status: string,
    rowJson: string,
    expectedRowJson: string,
  ): ScriptReply;
  depthqLedgerReserveFenced(
    meta: string,
    money: string,
    reservations: string,
    settlements: string,
    lock: string,
    jobId: string,
    amount: string,
    token: string,
  ): ScriptReply;
  depthqLedgerSettleFenced(
    meta: string,
    money: string,
    reservations: string,
    settlements: string,
    lock: string,
    jobId: string,
    spent: string,
    possiblyBilled: string,
    settledAt: string,
    token: string,
  ): ScriptReply;
  depthqLedgerReleaseFenced(
    meta: string,
    money: string,
    reservations: string,
    lock: string,
    jobId: string,
    token: string,
  ): ScriptReply;
  depthqLedgerRecordResultFenced(
    meta: string,
    results: string,
    counters: string,
    lock: string,
    jobId: string,
    status: string,
    rowJson: string,
    expectedRowJson: string,
    token: string,
  ): ScriptReply;
  depthqLedgerRegisterJobs(
    meta: string,
    results: string,
    counters: string,
    payloads: string,
    ...jobIdsRowsAndPayloads: string[]
  ): ScriptReply;
  depthqLedgerSetRunState(state: string, pause: string, newState: string): ScriptReply;
  depthqLedgerPauseFor(state: string, pause: string, reason: string, message: string, at: string): ScriptReply;
}

/** The connection with the ledger's scripts defined on it; defining them again on the same connection is skipped. */
export function withLedgerCommands(redis: Redis): Redis & LedgerCommands {
  return withLuaScripts<LedgerCommands>(redis, Object.values(ledgerScripts), 'the run ledger commands');
}
