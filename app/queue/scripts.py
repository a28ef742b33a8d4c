"""The task queue's state changes, each one Lua script: atomic in Redis, one round trip.

A task is a hash; where it stands is which sorted sets hold it: an agent's ``ready`` set
(score: priority band, then sequence), its ``delayed`` set (score: the time it may run), its
``running`` set and the tenant's ``leases`` set (score: lease expiry), one index per owner
(agent, campaign) and status, plus ``ALL``, and one per status for the whole tenant, by
sequence, for listing and counting. Every script
moves a task between them, writes its hash and appends its event, so no reader ever sees a
task in two states or in none.

Times are Redis's own clock (``TIME``), never an app instance's: leases and delays mean the
same on every instance. Each script takes the tenant's key prefix and builds the keys of the
task's agent and campaign from it, so it reaches no other tenant's keys. Lease tokens and
jitter come from the caller (a script's randomness is not random).
"""

from __future__ import annotations

from app.stores.redis.scripts import LuaScript

# Shared by every script. P is the tenant's key prefix, MAXLEN the event streams' cap.
PRELUDE = """
local P = ARGV[1]
local MAXLEN = ARGV[2]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function tkey(id) return P .. 'task:' .. id end
local function idx(owner, owner_id, status) return P .. owner .. ':' .. owner_id .. ':tasks:' .. status end
local function fmt(n) return string.format('%.0f', n) end
local function ready_score(priority, seq) return fmt((100 - tonumber(priority)) * 1e13 + tonumber(seq)) end
local function fields(id)
  local flat = redis.call('HGETALL', tkey(id))
  local t = {}
  for i = 1, #flat, 2 do t[flat[i]] = flat[i + 1] end
  return t, flat
end
local function emit(id, t, kind, at)
  redis.call('XADD', P .. 'agent-events', 'MAXLEN', '~', MAXLEN, '*', 'type', kind,
             'agent', t.agent, 'task', id, 'campaign', t.campaign, 'at', at)
  if t.campaign ~= '' then
    redis.call('XADD', P .. 'events', 'MAXLEN', '~', MAXLEN, '*', 'event', '0', 'type', kind,
               'campaign', t.campaign, 'agent', t.agent, 'task', id, 'at', at)
  end
end
local function move(id, t, status)
  if t.status then
    redis.call('ZREM', idx('agent', t.agent, t.status), id)
    if t.campaign ~= '' then redis.call('ZREM', idx('campaign', t.campaign, t.status), id) end
    redis.call('ZREM', P .. 'tasks:' .. t.status, id)
  end
  redis.call('ZADD', idx('agent', t.agent, status), t.seq, id)
  if t.campaign ~= '' then redis.call('ZADD', idx('campaign', t.campaign, status), t.seq, id) end
  redis.call('ZADD', P .. 'tasks:' .. status, t.seq, id)
  redis.call('HSET', tkey(id), 'status', status)
  t.status = status
end
local function unlease(id, t)
  redis.call('ZREM', P .. 'agent:' .. t.agent .. ':running', id)
  redis.call('ZREM', P .. 'tasks:leases', id)
end
local function queue(id, t, at)
  if at > now_ms() then
    redis.call('ZADD', P .. 'agent:' .. t.agent .. ':delayed', at, id)
  else
    redis.call('ZADD', P .. 'agent:' .. t.agent .. ':ready', ready_score(t.priority, t.seq), id)
  end
end
-- Finished tasks are deleted RETENTION ms after they finish, a few per call (bounded work).
local function retire(id, now, retention)
  redis.call('ZADD', P .. 'tasks:retire', now + tonumber(retention), id)
end
local function retire_due(now, at_most)
  local due = redis.call('ZRANGE', P .. 'tasks:retire', '-inf', now, 'BYSCORE', 'LIMIT', 0, at_most)
  for _, id in ipairs(due) do
    local t = fields(id)
    if t.agent then
      for _, status in ipairs({t.status, 'ALL'}) do
        redis.call('ZREM', idx('agent', t.agent, status), id)
        if t.campaign ~= '' then redis.call('ZREM', idx('campaign', t.campaign, status), id) end
      end
      redis.call('ZREM', P .. 'tasks:' .. t.status, id)
      redis.call('DEL', tkey(id))
    end
    redis.call('ZREM', P .. 'tasks:retire', id)
  end
end
-- Ends a task in a final status: moved, announced, and (unless DEAD, a dead letter kept for
-- a person) scheduled for deletion.
local function settle(id, t, status, kind, now, retention)
  redis.call('HSET', tkey(id), 'finished', now, 'lease_expires', '')
  move(id, t, status)
  if status ~= 'DEAD' then retire(id, now, retention) end
  emit(id, t, kind, now)
end
local function ok(id)
  local _, flat = fields(id)
  return {'OK', flat}
end
-- A lease that ran out: the attempt is over. Queued again at once (at least once), or DEAD
-- if it was the last attempt. Returns true if the task was taken back.
local function expire_lease(id, now, retention)
  local t = fields(id)
  if t.status ~= 'RUNNING' or (tonumber(t.lease_expires) or 0) > now then
    if t.status ~= 'RUNNING' then redis.call('ZREM', P .. 'tasks:leases', id) end
    return false
  end
  unlease(id, t)
  local err = 'lease expired during attempt ' .. t.attempts
  redis.call('HSET', tkey(id), 'lease_token', '', 'lease_expires', '', 'last_error', err)
  if tonumber(t.attempts) >= tonumber(t.max_attempts) then
    settle(id, t, 'DEAD', 'TASK_DEAD', now, retention)
  else
    move(id, t, 'QUEUED')
    queue(id, t, 0)
    emit(id, t, 'TASK_FAILED', now)
  end
  return true
end
local function expire_leases(key, now, retention, at_most)
  local due = redis.call('ZRANGE', key, '-inf', now, 'BYSCORE', 'LIMIT', 0, at_most)
  for _, id in ipairs(due) do expire_lease(id, now, retention) end
  return #due
end
"""

# KEYS: the idempotency key. ARGV: prefix, maxlen, id, agent, campaign ('' for none), kind,
# payload, priority, max attempts, not-before ms (0: now), fingerprint, key TTL s.
# Replies {'CREATED' | 'EXISTING', hash} or {'REUSED'}. A retry that finds its task renews the
# key's TTL: a write, so that a WAIT after it (CHIMERA_TASK_REPLICAS) covers the task too, as
# WAIT is documented to cover the writes of its own connection.
ENQUEUE = LuaScript(
    PRELUDE
    + """
local id, fingerprint = ARGV[3], ARGV[11]
local held = redis.call('GET', KEYS[1])
if held then
  local held_id, held_print = string.match(held, '^(%S+) (%S+)$')
  if held_print ~= fingerprint then return {'REUSED'} end
  local _, flat = fields(held_id)
  if #flat > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[12])
    return {'EXISTING', flat}
  end
end
local now = now_ms()
retire_due(now, 10)
local seq = redis.call('INCR', P .. 'tasks:seq')
local not_before = tonumber(ARGV[10])
redis.call('HSET', tkey(id), 'id', id, 'agent', ARGV[4], 'campaign', ARGV[5], 'kind', ARGV[6],
  'payload', ARGV[7], 'priority', ARGV[8], 'max_attempts', ARGV[9], 'attempts', 0,
  'not_before', not_before > 0 and not_before or '', 'created', now, 'seq', seq,
  'last_error', '', 'result', '', 'started', '', 'finished', '', 'lease_expires', '',
  'lease_token', '')
local t = {agent = ARGV[4], campaign = ARGV[5], priority = ARGV[8], seq = seq}
redis.call('ZADD', idx('agent', t.agent, 'ALL'), seq, id)
if t.campaign ~= '' then redis.call('ZADD', idx('campaign', t.campaign, 'ALL'), seq, id) end
move(id, t, 'QUEUED')
queue(id, t, not_before)
redis.call('SET', KEYS[1], id .. ' ' .. fingerprint, 'EX', ARGV[12])
emit(id, t, 'TASK_QUEUED', now)
local _, flat = fields(id)
return {'CREATED', flat}
"""
)

# KEYS: the agent's ready set. ARGV: prefix, maxlen, agent, max, lease ms, retention, then one
# lease token per task that may be claimed. Expired leases of the agent are taken back and due
# delayed tasks made ready first. Replies {hashes of the claimed tasks, ms until the next
# delayed task is due or -1}.
CLAIM = LuaScript(
    PRELUDE
    + """
local agent, want, lease, retention = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now = now_ms()
local base = P .. 'agent:' .. agent
expire_leases(base .. ':running', now, retention, 100)
retire_due(now, 10)
local due = redis.call('ZRANGE', base .. ':delayed', '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local t = fields(id)
  redis.call('ZREM', base .. ':delayed', id)
  if t.status == 'QUEUED' then
    redis.call('ZADD', base .. ':ready', ready_score(t.priority, t.seq), id)
  end
end
local claimed = {}
local popped = redis.call('ZPOPMIN', KEYS[1], want)
for i = 1, #popped, 2 do
  local id = popped[i]
  local t = fields(id)
  if t.status == 'QUEUED' then
    local attempts = tonumber(t.attempts) + 1
    local expires = now + lease
    redis.call('HSET', tkey(id), 'attempts', attempts, 'started', now,
      'lease_expires', expires, 'lease_token', ARGV[6 + #claimed + 1])
    redis.call('ZADD', base .. ':running', expires, id)
    redis.call('ZADD', P .. 'tasks:leases', expires, id)
    move(id, t, 'RUNNING')
    emit(id, t, 'TASK_STARTED', now)
    local _, flat = fields(id)
    claimed[#claimed + 1] = flat
  end
end
local next_due = -1
local head = redis.call('ZRANGE', base .. ':delayed', 0, 0, 'WITHSCORES')
if #head > 0 then next_due = math.max(0, tonumber(head[2]) - now) end
return {claimed, next_due}
"""
)

# Whether the caller holds the task's lease now: 'OK', or why not ('NOT_FOUND', 'FORBIDDEN':
# another agent's task, 'LEASE_EXPIRED', or 'SETTLED': this token's attempt already ended);
# and the task's fields either way. The agent is the last ARGV of every lease holder's call.
LEASE_CHECK = """
local function holder(id, token, now)
  local t = fields(id)
  if not t.status then return 'NOT_FOUND', t end
  if t.agent ~= ARGV[#ARGV] then return 'FORBIDDEN', t end
  if token == '' or t.lease_token ~= token then return 'LEASE_EXPIRED', t end
  if t.status ~= 'RUNNING' then return 'SETTLED', t end
  if (tonumber(t.lease_expires) or 0) <= now then return 'LEASE_EXPIRED', t end
  return 'OK', t
end
"""

# KEYS: the task. ARGV: prefix, maxlen, id, token, lease ms, agent. Replies {'OK', hash} or a refusal.
HEARTBEAT = LuaScript(
    PRELUDE
    + LEASE_CHECK
    + """
local id = ARGV[3]
local now = now_ms()
local verdict, t = holder(id, ARGV[4], now)
if verdict == 'SETTLED' then return {'LEASE_EXPIRED'} end
if verdict ~= 'OK' then return {verdict} end
local expires = now + tonumber(ARGV[5])
redis.call('HSET', tkey(id), 'lease_expires', expires)
redis.call('ZADD', P .. 'agent:' .. t.agent .. ':running', expires, id)
redis.call('ZADD', P .. 'tasks:leases', expires, id)
return ok(id)
"""
)

# KEYS: the task. ARGV: prefix, maxlen, id, token, result JSON, retention ms, agent. Repeated with the
# token that completed the task, it replies with the task again ('SETTLED'), changing nothing.
COMPLETE = LuaScript(
    PRELUDE
    + LEASE_CHECK
    + """
local id = ARGV[3]
local now = now_ms()
local verdict, t = holder(id, ARGV[4], now)
if verdict == 'SETTLED' and t.status == 'SUCCEEDED' then
  local _, flat = fields(id)
  return {'SETTLED', flat}
end
if verdict == 'SETTLED' then return {'LEASE_EXPIRED'} end
if verdict ~= 'OK' then return {verdict} end
unlease(id, t)
redis.call('HSET', tkey(id), 'result', ARGV[5])
settle(id, t, 'SUCCEEDED', 'TASK_SUCCEEDED', now, ARGV[6])
return ok(id)
"""
)

# KEYS: the task. ARGV: prefix, maxlen, id, token, error, retryable (1/0), backoff base ms,
# backoff cap ms, jitter (0.5-1.0), retention ms, agent. A retryable failure before the last attempt
# queues the task again after min(cap, base * 2^(attempts-1)) * jitter; after the last it
# goes DEAD; a failure that is not retryable is FAILED at once. Repeated with the same token,
# it replies with the task as that first call left it ('SETTLED').
FAIL = LuaScript(
    PRELUDE
    + LEASE_CHECK
    + """
local id = ARGV[3]
local now = now_ms()
local verdict, t = holder(id, ARGV[4], now)
if verdict == 'SETTLED' and t.status ~= 'SUCCEEDED' then
  local _, flat = fields(id)
  return {'SETTLED', flat}
end
if verdict == 'SETTLED' then return {'LEASE_EXPIRED'} end
if verdict ~= 'OK' then return {verdict} end
unlease(id, t)
redis.call('HSET', tkey(id), 'last_error', ARGV[5], 'lease_expires', '')
local attempts, most = tonumber(t.attempts), tonumber(t.max_attempts)
if ARGV[6] == '1' and attempts < most then
  local delay = math.min(tonumber(ARGV[8]), tonumber(ARGV[7]) * 2 ^ (attempts - 1))
  local at = now + math.floor(delay * tonumber(ARGV[9]))
  redis.call('HSET', tkey(id), 'not_before', at)
  move(id, t, 'QUEUED')
  queue(id, t, at)
  emit(id, t, 'TASK_FAILED', now)
elseif ARGV[6] == '1' then
  settle(id, t, 'DEAD', 'TASK_DEAD', now, ARGV[10])
else
  settle(id, t, 'FAILED', 'TASK_FAILED', now, ARGV[10])
end
return ok(id)
"""
)

# KEYS: the task. ARGV: prefix, maxlen, id, retention ms. A queued, running or dead task is
# CANCELLED (a running one's lease is void: its holder's next call is LEASE_EXPIRED).
CANCEL = LuaScript(
    PRELUDE
    + """
local id = ARGV[3]
local t, flat = fields(id)
if not t.status then return {'NOT_FOUND'} end
if t.status ~= 'QUEUED' and t.status ~= 'RUNNING' and t.status ~= 'DEAD' then
  return {'CONFLICT', flat}
end
local now = now_ms()
local base = P .. 'agent:' .. t.agent
redis.call('ZREM', base .. ':ready', id)
redis.call('ZREM', base .. ':delayed', id)
unlease(id, t)
redis.call('HSET', tkey(id), 'lease_token', '')
settle(id, t, 'CANCELLED', 'TASK_CANCELLED', now, ARGV[4])
return ok(id)
"""
)

# KEYS: the task. ARGV: prefix, maxlen, id. A DEAD task is queued again with fresh attempts.
RETRY = LuaScript(
    PRELUDE
    + """
local id = ARGV[3]
local t, flat = fields(id)
if not t.status then return {'NOT_FOUND'} end
if t.status ~= 'DEAD' then return {'CONFLICT', flat} end
local now = now_ms()
redis.call('HSET', tkey(id), 'attempts', 0, 'finished', '', 'started', '', 'not_before', '',
  'lease_token', '')
move(id, t, 'QUEUED')
queue(id, t, 0)
emit(id, t, 'TASK_QUEUED', now)
return ok(id)
"""
)

# KEYS: the tenant's leases set. ARGV: prefix, maxlen, retention ms, at most. Takes back the
# tenant's expired leases (of agents no runtime claims for) and retires finished tasks.
SWEEP = LuaScript(
    PRELUDE
    + """
local now = now_ms()
local taken = expire_leases(KEYS[1], now, ARGV[3], tonumber(ARGV[4]))
retire_due(now, tonumber(ARGV[4]))
return taken
"""
)

# Reads. KEYS: task hashes. Replies one flat hash per key (empty if gone).
GET_MANY = LuaScript(
    """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""
)

# KEYS: the tenant's prefix (it names the tenant's slot). ARGV: agent ids. Replies {queued,
# running} per agent, from its ready, delayed and running sets. The keys are built here, as
# the other task scripts build an agent's: a page counts hundreds of agents, and three full
# keys each cost more to build and send than the counting.
COUNT_MANY = LuaScript(
    """
local P = KEYS[1]
local out = {}
for i, agent in ipairs(ARGV) do
  local base = P .. 'agent:' .. agent
  out[i] = {redis.call('ZCARD', base .. ':ready') + redis.call('ZCARD', base .. ':delayed'),
            redis.call('ZCARD', base .. ':running')}
end
return out
"""
)

# KEYS: one index per page. ARGV: prefix, then (exclusive upper sequence or '+inf', how many)
# per page. Replies, per page, the tasks' hashes newest first.
PAGE_MANY = LuaScript(
    """
local P = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local upper, count = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  local ids = redis.call('ZRANGE', key, upper, '-inf', 'BYSCORE', 'REV', 'LIMIT', 0, count)
  local rows = {}
  for _, id in ipairs(ids) do rows[#rows + 1] = redis.call('HGETALL', P .. 'task:' .. id) end
  out[i] = rows
end
return out
"""
)


# KEYS: sorted sets. Replies ZCARD of each.
ZCARD_MANY = LuaScript(
    """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('ZCARD', key) end
return out
"""
)
