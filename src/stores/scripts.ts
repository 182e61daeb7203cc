/**
 * Lua run inside Redis so that each cache operation is one command and one round trip.
 *
 * Layout of a namespace `ns` under prefix `p` (braces keep a namespace on one cluster slot):
 * - `p:{ns}:v`   the version counter (INCR), never expires
 * - `p:{ns}:c`   the version of the last clear; entries at or below it are invisible
 * - `p:{ns}:k:<key>` an entry: `ec1:<version>:<value>` with a PX expiry
 *
 * @module
 */

/** Prefix of every stored entry; anything else under our keys is foreign data. */
export const ENTRY_MAGIC = "ec1:";

// KEYS[1] = clear marker, KEYS[2..] = entries. Returns the marker followed by a
// (raw, pttl) pair per entry, false for a miss. Versions are filtered client-side so that
// foreign data can be counted.
export const READ_SCRIPT = `
local out = { redis.call('GET', KEYS[1]) or false }
for i = 2, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    out[#out + 1] = raw
    out[#out + 1] = redis.call('PTTL', KEYS[i])
  else
    out[#out + 1] = false
    out[#out + 1] = false
  end
end
return out
`;

// KEYS[1] = counter, KEYS[2] = clear marker, KEYS[3..] = entries;
// ARGV = value1, ttl1, value2, ttl2, ... Returns the last version; entry i got last - n + i.
// The counter is lifted above the clear marker in case it was evicted or deleted, so a new
// write can never hide behind an older clear.
export const WRITE_SCRIPT = `
local n = #KEYS - 2
local marker = tonumber(redis.call('GET', KEYS[2]) or '0')
local last = redis.call('INCRBY', KEYS[1], n)
if last - n < marker then
  last = redis.call('INCRBY', KEYS[1], marker - (last - n))
end
local first = last - n + 1
for i = 1, n do
  redis.call('SET', KEYS[i + 2], 'ec1:' .. string.format('%d', first + i - 1) .. ':' .. ARGV[2 * i - 1], 'PX', ARGV[2 * i])
end
return last
`;

// KEYS[1] = counter, KEYS[2..] = entries. Returns the deletion's version.
export const DELETE_SCRIPT = `
local v = redis.call('INCR', KEYS[1])
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
return v
`;

// KEYS[1] = counter, KEYS[2] = clear marker. Returns the clear's version.
export const CLEAR_SCRIPT = `
local v = redis.call('INCR', KEYS[1])
local marker = tonumber(redis.call('GET', KEYS[2]) or '0')
if v <= marker then v = redis.call('INCRBY', KEYS[1], marker - v + 1) end
redis.call('SET', KEYS[2], v)
return v
`;
