/**
 * Lua run inside Redis so that each cache operation is one command and one round trip.
 *
 * The key layout of a namespace and the change log's record format: docs/internals.md.
 *
 * Every script answers with Redis' clock (ms) so the client can place write deadlines on
 * it, and with a `repaired` flag (0 or 1): whether it found the counter, the clear marker
 * or the log in a state this code never writes (another type, not an integer, past the
 * safe range) and reset it. A reset is a clear: the counter moves on without a log record,
 * so every reader sees a gap and drops its L1.
 *
 * Writes (set, delete, clear, lease) carry a deadline on Redis' clock (`0`: none) and change
 * nothing when they run after it: the client reports a write as failed only once its
 * deadline has passed, so a failed write can never land later. They also check every
 * argument before the first change, so a refused call leaves Redis as it was.
 *
 * @module
 */

import { MAX_TTL } from "../store/contract.js";

/** Prefix of every stored entry; anything else under our keys is foreign data. */
export const ENTRY_MAGIC = "ec1:";

/** Keys per log record; larger batches become several records, to stay within Lua's stack. */
export const RECORD_KEYS = 1000;

/**
 * Counters and markers above this (2^53 - 2^50) are not ones this code wrote (the counter
 * starts from Redis' clock in µs, about 1.8e15 in 2026): they are reset, since versions
 * past 2^53 could not be read back exactly.
 */
const LIMIT = 2 ** 53 - 2 ** 50;

// Shared helpers, prepended to every script.
const PRELUDE = `
local LIMIT = ${LIMIT}
local MAXTTL = ${MAX_TTL}
local repaired = 0
local function fmt(n) return string.format('%d', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The integer this code keeps in a string key (counter, clear marker): nil when the key is
-- missing, false when it holds something this code never writes.
local function int_at(key)
  local raw = redis.pcall('GET', key)
  if type(raw) == 'table' then return false end
  if not raw then return nil end
  if #raw > 16 or not string.match(raw, '^%d+$') then return false end
  local n = tonumber(raw)
  if n > LIMIT then return false end
  return n
end
-- A deadline on Redis' clock in ms; 0 or '' for none.
local function late(deadline)
  local d = tonumber(deadline)
  return d ~= nil and d > 0 and now_ms() > d
end
`;

// Reads the counter and the clear marker, repairing either when it is not ours, lifts the
// counter above the marker (a counter lost and recreated must not hand out versions an
// older clear hides), then adds n. A counter recreated from the clock starts above every
// version the lost one handed out: a namespace never consumes a version per µs on average.
// Returns the counter after the addition and the marker.
const STATE = `
local function state(counter, marker, n)
  local v = int_at(counter)
  local m = int_at(marker)
  if v == false then
    repaired = 1
    redis.call('DEL', counter)
    v = nil
    m = false
  end
  if v == nil then
    local t = redis.call('TIME')
    v = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', counter, fmt(v))
  end
  if m == false then
    repaired = 1
    v = redis.call('INCRBY', counter, 1)
    redis.call('DEL', marker)
    redis.call('SET', marker, fmt(v))
    m = v
  end
  if m == nil then m = 0 end
  if v < m then v = redis.call('INCRBY', counter, m - v) end
  if n > 0 then v = redis.call('INCRBY', counter, n) end
  return v, m
end
`;

// ARGV[6] = '1': each record is also PUBLISHed on the channel named like the log, as
// JSON [id, fields, now]: the same record subscribers would read from the log.
const APPEND = `
local function append(log, id, maxlen, fields)
  local ok = redis.pcall('XADD', log, 'MAXLEN', '~', maxlen, fmt(id) .. '-0', unpack(fields))
  if type(ok) == 'table' and ok.err then
    -- The log holds ids above the counter (the counter was lost) or is not a stream: start
    -- it over. Readers find their cursor ahead of the head, or a gap, and flush their L1.
    redis.call('DEL', log)
    redis.call('XADD', log, 'MAXLEN', '~', maxlen, fmt(id) .. '-0', unpack(fields))
  end
  if ARGV[6] == '1' then
    redis.call('PUBLISH', log, cjson.encode({ fmt(id) .. '-0', fields, fmt(now_ms()) }))
  end
end
`;

// The change log after a cursor. A log that is not a stream is deleted: its records are
// lost, which readers see as a gap.
const CHANGES = `
local function changes(head, log, cursor, limit)
  local recs = {}
  if cursor >= 0 and head > cursor then
    local r = redis.pcall('XRANGE', log, '(' .. fmt(cursor) .. '-0', '+', 'COUNT', limit)
    if type(r) == 'table' and r.err then
      repaired = 1
      redis.call('DEL', log)
    else
      recs = r
    end
  end
  return { head, now_ms(), recs }
end
`;

// A write's answer carries the change log after the caller's cursor, read after the write,
// so a writing instance stays synced without separate requests. ARGV[3], ARGV[4]: cursor
// and limit, both '' for no sync.
const AFTER = `
local function after(head, log)
  if ARGV[3] == '' then return false end
  return changes(head, log, tonumber(ARGV[3]), tonumber(ARGV[4]))
end
`;

// KEYS: marker, counter, log, entries...; ARGV: [cursor, limit] to sync as well.
// Returns { marker, { raw1, pttl1, raw2, pttl2, ... }, changes or false, now, repaired,
// head }. An entry key of another type answers '' (corrupt) instead of failing the read.
export const READ_SCRIPT = `${PRELUDE}${STATE}${CHANGES}
local head, marker = state(KEYS[2], KEYS[1], 0)
local out = {}
for i = 4, #KEYS do
  local raw = redis.pcall('GET', KEYS[i])
  if type(raw) == 'table' then
    out[#out + 1] = ''
    out[#out + 1] = false
  elseif raw then
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', KEYS[i])
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
local sync = false
if #ARGV >= 2 then sync = changes(head, KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2])) end
return { marker, out, sync, now_ms(), repaired, head }
`;

// KEYS: counter, marker, log; ARGV: cursor, limit. Returns { head, now, records, repaired }.
export const SYNC_SCRIPT = `${PRELUDE}${STATE}${CHANGES}
local head = state(KEYS[1], KEYS[2], 0)
local c = changes(head, KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
c[4] = repaired
return c
`;

// KEYS: counter, marker, log, entries...; ARGV: origin, log length, cursor and limit (both
// '' for no sync), deadline, publish ('1' or '0'), then value, ttl, propagate ('1' or '0')
// per entry. Returns
// { last version (-1: past the deadline, nothing written), changes or false, now,
// repaired }; entry i got last - n + i.
export const WRITE_SCRIPT = `${PRELUDE}${STATE}${APPEND}${CHANGES}${AFTER}
if late(ARGV[5]) then return { -1, false, now_ms(), 0 } end
local n = #KEYS - 3
for i = 1, n do
  local ttl = tonumber(ARGV[3 * i + 5])
  if ttl == nil or ttl < 1 or ttl > MAXTTL or ttl % 1 ~= 0 then
    return redis.error_reply('ERR edgecache: invalid ttl')
  end
end
local last = state(KEYS[1], KEYS[2], n)
local first = last - n + 1
local maxlen = tonumber(ARGV[2])
local now = now_ms()
local rec = nil
local start = first
for i = 1, n do
  local v, ttl, prop = ARGV[3 * i + 4], ARGV[3 * i + 5], ARGV[3 * i + 6]
  local version = first + i - 1
  redis.call('SET', KEYS[i + 3], 'ec1:' .. fmt(version) .. ':' .. v, 'PX', ttl)
  if maxlen > 0 then
    if rec == nil then
      start = version
      rec = { 'o', 's', 'i', ARGV[1], 'f', fmt(start) }
    end
    rec[#rec + 1] = 'k'
    rec[#rec + 1] = KEYS[i + 3]
    rec[#rec + 1] = 'v'
    if prop == '1' then
      rec[#rec + 1] = v
      rec[#rec + 1] = 'x'
      rec[#rec + 1] = fmt(now + tonumber(ttl))
    else
      rec[#rec + 1] = ''
      rec[#rec + 1] = 'x'
      rec[#rec + 1] = '0'
    end
    if version - start + 1 == ${RECORD_KEYS} or i == n then
      append(KEYS[3], version, maxlen, rec)
      rec = nil
    end
  end
end
return { last, after(last, KEYS[3]), now, repaired }
`;

// KEYS: counter, marker, log, entries...; ARGV: origin, log length, cursor, limit,
// deadline, publish. One version per record of at most RECORD_KEYS keys. Returns { last version
// (-1: past the deadline), changes or false, now, repaired }.
export const DELETE_SCRIPT = `${PRELUDE}${STATE}${APPEND}${CHANGES}${AFTER}
if late(ARGV[5]) then return { -1, false, now_ms(), 0 } end
local n = #KEYS - 3
local maxlen = tonumber(ARGV[2])
local chunks = math.max(1, math.ceil(n / ${RECORD_KEYS}))
local last = state(KEYS[1], KEYS[2], chunks)
for c = 1, chunks do
  local version = last - chunks + c
  local rec = { 'o', 'd', 'i', ARGV[1], 'f', fmt(version) }
  for i = (c - 1) * ${RECORD_KEYS} + 4, math.min(c * ${RECORD_KEYS}, n) + 3 do
    redis.call('UNLINK', KEYS[i])
    rec[#rec + 1] = 'k'
    rec[#rec + 1] = KEYS[i]
    rec[#rec + 1] = 'v'
    rec[#rec + 1] = ''
    rec[#rec + 1] = 'x'
    rec[#rec + 1] = '0'
  end
  if maxlen > 0 then append(KEYS[3], version, maxlen, rec) end
end
return { last, after(last, KEYS[3]), now_ms(), repaired }
`;

// KEYS: counter, marker, log; ARGV: origin, log length, cursor, limit, deadline, publish.
// Returns
// { the clear's version (-1: past the deadline), changes or false, now, repaired }.
export const CLEAR_SCRIPT = `${PRELUDE}${STATE}${APPEND}${CHANGES}${AFTER}
if late(ARGV[5]) then return { -1, false, now_ms(), 0 } end
local v = state(KEYS[1], KEYS[2], 1)
redis.call('SET', KEYS[2], fmt(v))
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then append(KEYS[3], v, maxlen, { 'o', 'c', 'i', ARGV[1], 'f', fmt(v) }) end
return { v, after(v, KEYS[3]), now_ms(), repaired }
`;

// KEYS: leases; ARGV: token, ttl (whole ms, checked by the caller), deadline. Returns
// { 1 (-1: past the deadline, nothing taken); now; then per key: 1 taken, 0 held by another,
// 2 taken after a repair }. A lease is always a string with an expiry: anything else under
// its key (no expiry, another type) would hold every load of the key off until someone
// removed it, so it is replaced.
export const ACQUIRE_SCRIPT = `${PRELUDE}
if late(ARGV[3]) then return { -1, now_ms() } end
local out = { 1, now_ms() }
for i = 1, #KEYS do
  local lease = KEYS[i]
  if redis.call('SET', lease, ARGV[1], 'NX', 'PX', ARGV[2]) then
    out[i + 2] = 1
  elseif redis.call('TYPE', lease)['ok'] ~= 'string' or redis.call('PTTL', lease) < 0 then
    redis.call('DEL', lease)
    redis.call('SET', lease, ARGV[1], 'PX', ARGV[2])
    out[i + 2] = 2
  else
    out[i + 2] = 0
  end
end
return out
`;

/** Ends each lease the caller's token still holds. KEYS: leases; ARGV: token. */
export const RELEASE_SCRIPT = `
local n = 0
for i = 1, #KEYS do
  if redis.pcall('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
`;

// KEYS: marker, counter; ARGV: SCAN cursor, MATCH pattern, COUNT, limit. Lists entry keys
// (as Redis keys) whose entry is live: ours (the magic and a version), above the last
// clear and not above the counter (as READ_SCRIPT judges them; expired keys SCAN skips).
// At most 8 SCAN steps; a step that matched nothing doubles the next one's COUNT (up to
// 8192), so a sparse prefix in a large database moves on quickly while a dense one keeps
// pages near the limit. Bounded work per call; changes nothing.
// Returns { next cursor ('0': done), keys }.
export const KEYS_SCRIPT = `${PRELUDE}
local marker = int_at(KEYS[1])
local head = int_at(KEYS[2])
if marker == false or head == false then return { '0', {} } end
if marker == nil then marker = 0 end
local out = {}
local cursor = ARGV[1]
local limit = tonumber(ARGV[4])
local count = tonumber(ARGV[3])
for step = 1, 8 do
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', count)
  cursor = r[1]
  if #r[2] == 0 then count = math.min(count * 2, 8192) end
  for _, key in ipairs(r[2]) do
    local raw = redis.pcall('GETRANGE', key, 0, 24)
    if type(raw) == 'string' then
      local v = tonumber(string.match(raw, '^${ENTRY_MAGIC}(%d+):'))
      if v ~= nil and v > marker and (head == nil or v <= head) then out[#out + 1] = key end
    end
  end
  if cursor == '0' or #out >= limit then break end
end
return { cursor, out }
`;
