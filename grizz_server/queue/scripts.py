"""The job queue's state transitions, each one Lua script run atomically by Redis.

Why Lua and not separate calls: a transition reads state and decides (is this
worker still the owner? retry or dead-letter?) and then writes several keys.
Done as separate round trips, a crash or a second worker between them loses
or duplicates a job (the seeds' xack / xadd / xdel retry race). Each script
here either happens completely or not at all.

Fencing: `begin` stores a fresh random token in the job's info hash for each
attempt. Every later write of that attempt (`append`, `extend`, `finish`,
`fail`, `release`) first checks that the hash still holds its token, so a
worker whose job was reclaimed (a "zombie") can no longer write chunks, ack
the job or retry it.

Must not import: anything (plain strings).
"""

# Lua source lines keep their natural length.
# ruff: noqa: E501

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

INBOX_KEY = "grizz:gateway:{gateway}:inbox"
"""Must equal `keys.gateway_inbox` (a test checks); Lua builds it from the id."""
INBOX_MAXLEN = 50_000
INBOX_TTL_MS = 120_000
"""An inbox no one renews (its gateway died) expires this long after its last entry."""

# Every entry of a job's output stream is written by emit(): to the job's
# stream (`out`, which resume and catch-up read) and, in the same script, to
# the inbox stream of every gateway that currently holds a device of the
# job's user (`gws`, from live_gateways()). Each gateway then follows all the
# jobs of its devices with one blocking read of its own inbox, however many
# jobs are in flight.
_EMIT = (
    """
local function live_gateways(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', key, now, '+inf')
end

local function emit(out, gws, job, fields)
  local id = redis.call('XADD', out, '*', unpack(fields))
  for _, gw in ipairs(gws) do
    local inbox = 'grizz:gateway:' .. gw .. ':inbox'
    redis.call('XADD', inbox, 'MAXLEN', '~', """
    + str(INBOX_MAXLEN)
    + """, '*', 'j', job, 'e', id, unpack(fields))
    redis.call('PEXPIRE', inbox, """
    + str(INBOX_TTL_MS)
    + """)
  end
  return id
end
"""
)

# KEYS: 1 jobs, 2 info, 3 lease, 4 out, 5 dlq, 6 inflight, 7 active, 8 gateways
_DEAD_LETTER = (
    _EMIT
    + """
local function dead_letter(group, entry, job, attempt, code, reason, out_ttl, info_ttl, dlq_max)
  if entry and entry ~= '' then
    redis.call('XACK', KEYS[1], group, entry)
    redis.call('XDEL', KEYS[1], entry)
  end
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'state', 'dead', 'token', '', 'reason', reason)
  redis.call('EXPIRE', KEYS[2], info_ttl)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', dlq_max, '*', 'job', job,
    'user', redis.call('HGET', KEYS[2], 'user') or '', 'attempts', attempt,
    'code', code, 'reason', reason)
  emit(KEYS[4], live_gateways(KEYS[8]), job,
    {'a', attempt, 'k', 'error', 'c', code, 't', reason})
  redis.call('EXPIRE', KEYS[4], out_ttl)
  redis.call('ZREM', KEYS[6], job)
  redis.call('ZREM', KEYS[7], job)
end
"""
)

SUBMIT = (
    _NOW
    + """
-- Admit and queue a job in one step; the user's message travels in the job
-- record, so a worker can answer (and store) it before the gateway's own
-- write of the message lands.
-- KEYS: 1 jobs, 2 info, 3 inflight, 4 active, 5 rate
-- ARGV: 1 job, 2 max_depth, 3 max_active, 4 rate_per_ms, 5 burst, 6 stale_ms,
--       7 jobs_maxlen, 8 user, 9 message, 10 reply, 11 conv, 12 tz, 13 day,
--       14 zone, 15 text
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'exists', redis.call('HGET', KEYS[2], 'state') or ''}
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[6]))
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[2]) then return {'busy', ''} end
if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[3]) then return {'too_many', ''} end
local rate, burst = tonumber(ARGV[4]), tonumber(ARGV[5])
local b = redis.call('HMGET', KEYS[5], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
if tokens < 1 then
  return {'rate', tostring(math.ceil((1 - tokens) / rate))}
end
redis.call('HSET', KEYS[5], 'tokens', tostring(tokens - 1), 'ts', now)
redis.call('PEXPIRE', KEYS[5], math.ceil(burst / rate) + 1000)
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*',
  'job', ARGV[1], 'user', ARGV[8])
redis.call('HSET', KEYS[2], 'user', ARGV[8], 'message', ARGV[9], 'reply', ARGV[10],
  'conv', ARGV[11], 'tz', ARGV[12], 'day', ARGV[13], 'zone', ARGV[14],
  'text', ARGV[15], 'state', 'queued', 'attempt', 0, 'entry', entry,
  'token', '', 'created', now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return {'queued', entry}
"""
)

ANNOUNCE = """
-- A live event for a user's devices, as a script so it joins the turn's
-- pipeline with the other calls (queue/pipeline.py, `ScriptPipeline.call`).
-- KEYS: 1 the user's changes channel; ARGV: 1 event json
return redis.call('PUBLISH', KEYS[1], ARGV[1])
"""

CANCEL = """
-- Withdraw a job the gateway could not store the message of: gone from the
-- queue, its record and output deleted (a running attempt is fenced off, and
-- a re-send of the message is admitted afresh). A finished job stays.
-- KEYS: 1 jobs, 2 info, 3 lease, 4 out, 5 inflight, 6 active; ARGV: 1 group, 2 job
local f = redis.call('HMGET', KEYS[2], 'entry', 'state')
if not f[1] or f[2] == 'done' then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], f[1])
redis.call('XDEL', KEYS[1], f[1])
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
return 1
"""

BEGIN = (
    _DEAD_LETTER
    + """
-- ARGV: 1 group, 2 entry, 3 token, 4 lease_ms, 5 consumer, 6 max_attempts,
--       7 max_deliveries, 8 out_ttl, 9 info_ttl, 10 dlq_max, 11 job
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  return {'gone'}
end
local state = redis.call('HGET', KEYS[2], 'state')
if state == 'done' or state == 'dead' or redis.call('HGET', KEYS[2], 'entry') ~= ARGV[2] then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  return {'stale'}
end
local holder = redis.call('GET', KEYS[3])
if holder and holder ~= ARGV[3] then return {'leased'} end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
local deliveries = 0
if pending[1] then deliveries = tonumber(pending[1][4]) end
local attempt = redis.call('HINCRBY', KEYS[2], 'attempt', 1)
if attempt > tonumber(ARGV[6]) or deliveries > tonumber(ARGV[7]) then
  local reason = 'Grizz could not finish this reply after ' .. (attempt - 1) ..
    ' attempts (' .. deliveries .. ' deliveries).'
  dead_letter(ARGV[1], ARGV[2], ARGV[11], attempt - 1, 'job_failed', reason,
    ARGV[8], ARGV[9], ARGV[10])
  return {'dead', tostring(attempt - 1)}
end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
redis.call('HSET', KEYS[2], 'state', 'running', 'token', ARGV[3], 'owner', ARGV[5])
if attempt > 1 then
  emit(KEYS[4], live_gateways(KEYS[8]), ARGV[11], {'a', attempt, 'k', 'restart'})
else  -- devices see nothing for `start`: it stays out of the inboxes
  redis.call('XADD', KEYS[4], '*', 'a', attempt, 'k', 'start')
end
redis.call('EXPIRE', KEYS[4], ARGV[8])
local f = redis.call('HMGET', KEYS[2], 'user', 'message', 'reply', 'conv', 'tz',
  'day', 'zone', 'text')
return {'run', tostring(attempt), f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]}
"""
)

# Emits entries given as (kind, text, extra) triples from ARGV[first] on.
_APPEND_ENTRIES = (
    _EMIT
    + """
local function append_entries(out, gws, job, attempt, first)
  for i = first, #ARGV, 3 do
    emit(out, gws, job, {'a', attempt, 'k', ARGV[i], 't', ARGV[i + 1], 'x', ARGV[i + 2]})
  end
end
"""
)

APPEND = (
    _APPEND_ENTRIES
    + """
-- KEYS: 1 info, 2 out, 3 gateways
-- ARGV: 1 token, 2 attempt, 3 job, 4.. (kind, text, extra) triples
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return false end
append_entries(KEYS[2], live_gateways(KEYS[3]), ARGV[3], ARGV[2], 4)
return 1
"""
)

CHECK = """
-- KEYS: 1 info; ARGV: 1 token
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then return 1 end
return 0
"""

EXTEND = """
-- KEYS: 1 info, 2 lease, 3 jobs; ARGV: 1 token, 2 lease_ms, 3 group, 4 consumer, 5 entry
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('XCLAIM', KEYS[3], ARGV[3], ARGV[4], 0, ARGV[5], 'JUSTID')
return 1
"""

FINISH = (
    _APPEND_ENTRIES
    + """
-- KEYS: 1 jobs, 2 info, 3 lease, 4 out, 5 inflight, 6 active, 7 changes channel,
--       8 gateways
-- ARGV: 1 token, 2 group, 3 entry, 4 job, 5 message_json, 6 out_ttl, 7 info_ttl,
--       8 event json ('' for none), 9.. entries still to append before `done`
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then return 0 end
local attempt = redis.call('HGET', KEYS[2], 'attempt')
local gws = live_gateways(KEYS[8])
append_entries(KEYS[4], gws, ARGV[4], attempt, 9)
emit(KEYS[4], gws, ARGV[4], {'a', attempt, 'k', 'done', 't', ARGV[5]})
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[2], 'state', 'done', 'token', '')
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('ZREM', KEYS[5], ARGV[4])
redis.call('ZREM', KEYS[6], ARGV[4])
if ARGV[8] ~= '' then redis.call('PUBLISH', KEYS[7], ARGV[8]) end
return 1
"""
)

FAIL = (
    _DEAD_LETTER
    + _NOW
    + """
-- KEYS: 1 jobs, 2 info, 3 lease, 4 out, 5 dlq, 6 inflight, 7 active, 8 gateways,
--       9 delayed
-- ARGV: 1 token, 2 group, 3 entry, 4 job, 5 code, 6 reason, 7 retryable,
--       8 max_attempts, 9 delay_ms, 10 out_ttl, 11 info_ttl, 12 dlq_max
if redis.call('HGET', KEYS[2], 'token') ~= ARGV[1] then return {'fenced', ''} end
local attempt = tonumber(redis.call('HGET', KEYS[2], 'attempt'))
if ARGV[7] == '1' and attempt < tonumber(ARGV[8]) then
  redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[2], 'state', 'retrying', 'token', '', 'entry', '')
  redis.call('ZADD', KEYS[9], now + tonumber(ARGV[9]), ARGV[4])
  emit(KEYS[4], live_gateways(KEYS[8]), ARGV[4],
    {'a', attempt, 'k', 'retry', 't', ARGV[6], 'x', ARGV[9]})
  return {'retry', tostring(attempt)}
end
dead_letter(ARGV[2], ARGV[3], ARGV[4], attempt, ARGV[5], ARGV[6], ARGV[10], ARGV[11], ARGV[12])
return {'dead', tostring(attempt)}
"""
)

PROMOTE = (
    _NOW
    + """
-- KEYS: 1 delayed, 2 jobs; ARGV: 1 limit, 2 jobs_maxlen, 3 info key prefix
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
for _, job in ipairs(due) do
  redis.call('ZREM', KEYS[1], job)
  local info = ARGV[3] .. job
  if redis.call('HGET', info, 'state') == 'retrying' then
    local entry = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
      'job', job, 'user', redis.call('HGET', info, 'user'))
    redis.call('HSET', info, 'state', 'queued', 'entry', entry)
  end
end
return #due
"""
)

RELEASE = """
-- KEYS: 1 info, 2 lease, 3 jobs; ARGV: 1 token, 2 group, 3 consumer, 4 entry
-- Hand a job back at once (worker shutdown): drop the lease and make the
-- entry look idle for ages so the next XAUTOCLAIM takes it immediately.
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'token', '', 'state', 'queued')
redis.call('DEL', KEYS[2])
redis.call('XCLAIM', KEYS[3], ARGV[2], ARGV[3], 0, ARGV[4], 'IDLE', 1000000000, 'JUSTID')
return 1
"""

REQUEUE = """
-- KEYS: 1 jobs, 2 info, 3 inflight, 4 active, 5 dlq, 6 out
-- ARGV: 1 job, 2 jobs_maxlen
-- Give a dead-lettered job a fresh start (`grizz-server dlq retry`).
if redis.call('HGET', KEYS[2], 'state') ~= 'dead' then return {'not_dead', ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*',
  'job', ARGV[1], 'user', redis.call('HGET', KEYS[2], 'user'))
redis.call('HSET', KEYS[2], 'state', 'queued', 'attempt', 0, 'entry', entry,
  'token', '', 'reason', '')
redis.call('PERSIST', KEYS[2])
redis.call('DEL', KEYS[6])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
for _, item in ipairs(redis.call('XRANGE', KEYS[5], '-', '+')) do
  local fields = item[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'job' and fields[i + 1] == ARGV[1] then
      redis.call('XDEL', KEYS[5], item[1])
    end
  end
end
return {'queued', entry}
"""

ORPHANS = """
-- KEYS: 1 jobs; ARGV: 1 group, 2 consumer, 3 jobs_maxlen, 4 info key prefix,
--       5 lease key prefix, 6 count
-- Requeue what a consumer known to be dead (its process exited) was holding:
-- each of its pending entries is acked and removed, and a job that entry
-- still stood for goes back on the stream as a new entry with its lease
-- dropped, so a blocked XREADGROUP hands it to a live worker at once (the
-- next `begin` counts the attempt). An entry for a job that is gone, done,
-- dead or re-entered is dropped, as `begin` would. Returns the number of
-- entries looked at (`count` means: call again).
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[6], ARGV[2])
for _, p in ipairs(pending) do
  local entry = p[1]
  local item = redis.call('XRANGE', KEYS[1], entry, entry)
  local job = nil
  if item[1] then
    local fields = item[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'job' then job = fields[i + 1] end
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], entry)
  redis.call('XDEL', KEYS[1], entry)
  if job then
    local info = ARGV[4] .. job
    local f = redis.call('HMGET', info, 'state', 'entry', 'user')
    if f[2] == entry and (f[1] == 'running' or f[1] == 'queued') then
      redis.call('DEL', ARGV[5] .. job)
      local new = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
        'job', job, 'user', f[3])
      redis.call('HSET', info, 'state', 'queued', 'token', '', 'entry', new)
    end
  end
end
return #pending
"""
