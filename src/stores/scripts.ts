/**
 * Lua run inside Redis so that each cache operation is one command and one round trip.
 *
 * Layout of a namespace `ns` under prefix `p` (braces keep a namespace on one cluster slot):
 * - `p:{ns}:v`       the version counter, never expires; created from Redis' clock in µs,
 *                    so that a counter lost and created again (eviction, failover) still
 *                    moves forward: readers see the jump as a gap in the log and flush
 * - `p:{ns}:c`       the version of the last clear; entries at or below it are invisible
 * - `p:{ns}:log`     the change log: a stream whose entry ids are `<last version>-0`
 * - `p:{ns}:k:<key>` an entry: `ec1:<version>:<value>` with a PX expiry
 * - `p:{ns}:l:<key>` a load lease (`getOrSet({ lock: true })`): a random token, PX expiry
 *
 * A log record is `o <op> i <origin> f <first version>` followed, per key, by
 * `k <redis key> v <value or ""> x <expiry, Redis ms, or 0>`: `v` is empty unless the write
 * propagated its value.
 *
 * @module
 */

/** Prefix of every stored entry; anything else under our keys is foreign data. */
export const ENTRY_MAGIC = "ec1:";

/** Keys per log record; larger batches become several records, to stay within Lua's stack. */
export const RECORD_KEYS = 1000;

// Shared helpers, prepended to the scripts that need them.
const NOW = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

const APPEND = `
local function append(log, id, maxlen, fields)
  local sid = string.format('%d', id) .. '-0'
  local ok = redis.pcall('XADD', log, 'MAXLEN', '~', maxlen, sid, unpack(fields))
  if type(ok) == 'table' and ok.err then
    -- The log holds ids above the counter (the counter was lost): start the log over.
    -- Readers find their cursor ahead of the head, or a gap, and flush their L1.
    redis.call('DEL', log)
    redis.call('XADD', log, 'MAXLEN', '~', maxlen, sid, unpack(fields))
  end
end
`;

// Adds n to the counter, creating it from the clock in µs if it is missing. A namespace
// never consumes a version per µs on average, so a recreated counter starts above every
// version the lost one handed out.
const BUMP = `
local function bump(counter, n)
  if redis.call('EXISTS', counter) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', counter, string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2])))
  end
  return redis.call('INCRBY', counter, n)
end
`;

const CHANGES = `
local function changes(counter, log, cursor, limit)
  -- A missing counter is created here too, so that the first write after a reader's first
  -- sync follows on from its cursor instead of looking like a gap.
  local head = bump(counter, 0)
  local recs = {}
  if cursor >= 0 and head > cursor then
    recs = redis.call('XRANGE', log, '(' .. string.format('%d', cursor) .. '-0', '+', 'COUNT', limit)
  end
  return { head, now_ms(), recs }
end
`;

// A write's answer carries the change log after the caller's cursor, read after the write,
// so a writing instance stays synced without separate requests.
const AFTER = `
local function after(counter, log)
  if ARGV[3] == '' then return false end
  return changes(counter, log, tonumber(ARGV[3]), tonumber(ARGV[4]))
end
`;

// KEYS: marker, counter, log, entries...; ARGV: [cursor, limit] to sync as well.
// Returns { marker, { raw1, pttl1, raw2, pttl2, ... }, changes or false }.
export const READ_SCRIPT = `${NOW}${BUMP}${CHANGES}
local out = {}
for i = 4, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', KEYS[i])
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
local sync = false
if #ARGV >= 2 then sync = changes(KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2])) end
return { redis.call('GET', KEYS[1]) or false, out, sync }
`;

// KEYS: counter, log; ARGV: cursor, limit. Returns { head, now, records }.
export const SYNC_SCRIPT = `${NOW}${BUMP}${CHANGES}
return changes(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]))
`;

// KEYS: counter, marker, log, entries...; ARGV: origin, log length, cursor and limit (both
// '' for no sync), then value, ttl, propagate ('1' or '0') per entry. Returns { last
// version, changes or false }; entry i got last - n + i.
// The counter is lifted above the clear marker in case it was evicted or deleted, so a new
// write can never hide behind an older clear.
export const WRITE_SCRIPT = `${NOW}${BUMP}${APPEND}${CHANGES}${AFTER}
local n = #KEYS - 3
local marker = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = bump(KEYS[1], n)
if last - n < marker then
  last = redis.call('INCRBY', KEYS[1], marker - (last - n))
end
local first = last - n + 1
local maxlen = tonumber(ARGV[2])
local now = 0
if maxlen > 0 then now = now_ms() end
local rec = nil
local start = first
for i = 1, n do
  local v, ttl, prop = ARGV[3 * i + 2], ARGV[3 * i + 3], ARGV[3 * i + 4]
  local version = first + i - 1
  redis.call('SET', KEYS[i + 3], 'ec1:' .. string.format('%d', version) .. ':' .. v, 'PX', ttl)
  if maxlen > 0 then
    if rec == nil then
      start = version
      rec = { 'o', 's', 'i', ARGV[1], 'f', string.format('%d', start) }
    end
    rec[#rec + 1] = 'k'
    rec[#rec + 1] = KEYS[i + 3]
    if prop == '1' then
      rec[#rec + 1] = 'v'
      rec[#rec + 1] = v
      rec[#rec + 1] = 'x'
      rec[#rec + 1] = string.format('%d', now + tonumber(ttl))
    else
      rec[#rec + 1] = 'v'
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
return { last, after(KEYS[1], KEYS[3]) }
`;

// KEYS: counter, log, entries...; ARGV: origin, log length, cursor, limit. One version per
// record of at most RECORD_KEYS keys. Returns { last version, changes or false }.
export const DELETE_SCRIPT = `${NOW}${BUMP}${APPEND}${CHANGES}${AFTER}
local n = #KEYS - 2
local maxlen = tonumber(ARGV[2])
local chunks = math.max(1, math.ceil(n / ${RECORD_KEYS}))
local last = bump(KEYS[1], chunks)
for c = 1, chunks do
  local version = last - chunks + c
  local rec = { 'o', 'd', 'i', ARGV[1], 'f', string.format('%d', version) }
  for i = (c - 1) * ${RECORD_KEYS} + 3, math.min(c * ${RECORD_KEYS}, n) + 2 do
    redis.call('UNLINK', KEYS[i])
    rec[#rec + 1] = 'k'
    rec[#rec + 1] = KEYS[i]
    rec[#rec + 1] = 'v'
    rec[#rec + 1] = ''
    rec[#rec + 1] = 'x'
    rec[#rec + 1] = '0'
  end
  if maxlen > 0 then append(KEYS[2], version, maxlen, rec) end
end
return { last, after(KEYS[1], KEYS[2]) }
`;

// KEYS: counter, marker, log; ARGV: origin, log length, cursor, limit. Returns { the
// clear's version, changes or false }.
export const CLEAR_SCRIPT = `${NOW}${BUMP}${APPEND}${CHANGES}${AFTER}
local v = bump(KEYS[1], 1)
local marker = tonumber(redis.call('GET', KEYS[2]) or '0')
if v <= marker then v = redis.call('INCRBY', KEYS[1], marker - v + 1) end
redis.call('SET', KEYS[2], v)
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then append(KEYS[3], v, maxlen, { 'o', 'c', 'i', ARGV[1], 'f', string.format('%d', v) }) end
return { v, after(KEYS[1], KEYS[3]) }
`;

/** Ends a lease only if the caller's token still holds it. KEYS: lease; ARGV: token. */
export const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;
