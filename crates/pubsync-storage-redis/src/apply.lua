-- pubsync: apply a chunk of versioned changes, each only when it is newer than what Redis holds.
--
-- KEYS[1]: the tombstone hash (field: key, value: the delete's version); KEYS[2]: their expiry
-- times (sorted set, member: key, score: expiry in Unix ms); for change i, KEYS[2+i] is its
-- `kv:` key (`<kv prefix><key>`).
-- ARGV[1]: the tombstone TTL in milliseconds; ARGV[2]: the operations, one byte per change
-- (`w` write, `d` delete); ARGV[3]: the versions, 8 bytes per change (little-endian IEEE 754
-- doubles, read with struct.unpack: no strtod, one argument for the chunk); ARGV[4]: the length
-- of the kv prefix; then per change, in order, ARGV[4+i]: a write's value, or a delete's
-- version as decimal text for its tombstone.
-- Returns how many changes were applied.
--
-- The stored version of a live key is its value's `_timestamp`; of a deleted key, its tombstone.
-- A change is applied when there is no stored version or its version is greater (an equal
-- version, a redelivered message, is not). Versions are compared as Lua numbers (doubles; stored
-- ones read with strtod): microsecond Unix times (~1.7e9 s) are 4 doubles apart per microsecond, so their
-- order is kept. Versions are stored as the text received and never formatted by Lua, whose
-- tostring keeps only 14 digits.
--
-- Tombstones: one hash per storage prefix, their expiry times in a sorted set beside it. Each
-- call first removes expired ones, at most as many as it can add plus 100 (so they cannot pile
-- up while changes come; when no call comes, they stay until the next one), and a tombstone
-- past its expiry that this has not reached yet counts as absent. Passing a tombstone key per
-- change, as one key each with PX did, cost a third of the call for fresh keys.
--
-- Shape: the pruning above; one MGET of the keys; one HMGET of the tombstones of the keys that
-- hold no value, when the hash exists; the changes worked out in order in flat arrays (a key may
-- come several times); then one MSET, one DEL, one HDEL of the tombstones written over, one HSET
-- and one ZADD of the new ones. Every per-change step counts: a script call of 1000 changes
-- spends most of its time passing arguments and running these loops, so they avoid per-key
-- tables, `tonumber` (strtod) of the incoming versions and string building (a tombstone field
-- is one string.sub of its key, only for keys without a value or deleted).

-- The end of the last `"_timestamp"` in `value` from `from` on, or nil.
local function last_timestamp(value, from)
  local last = nil
  while true do
    local _, finish = string.find(value, '"_timestamp"', from, true)
    if finish == nil then
      return last
    end
    last = finish
    from = finish + 1
  end
end

-- The version of a stored value: the number after the last `"_timestamp"` of the text (the
-- original appends the top-level one last, so the tail is searched first), else whatever cjson
-- finds, else nil (older than any change).
local function version_of(value)
  local last = nil
  if #value > 64 then
    last = last_timestamp(value, #value - 63)
  end
  if last == nil then
    last = last_timestamp(value, 1)
  end
  if last then
    local text = string.match(value, '^%s*:%s*"?(%-?[%d%.]+[eE]?[%+%-]?%d*)', last + 1)
    local number = text and tonumber(text)
    if number then
      return number
    end
  end
  local ok, decoded = pcall(cjson.decode, value)
  if ok and type(decoded) == 'table' then
    return tonumber(decoded['_timestamp'])
  end
  return nil
end

-- redis.call(command, [key,] items...) in slices of `step` items (Lua's unpack has a limit of a few
-- thousand values); the replies of MGET are concatenated.
local function call_in_slices(command, items, step, key)
  local count = #items
  if key then
    if count <= step then
      return redis.call(command, key, unpack(items))
    end
  elseif count <= step then
    return redis.call(command, unpack(items))
  end
  local replies = {}
  for first = 1, count, step do
    local last = math.min(first + step - 1, count)
    local reply
    if key then
      reply = redis.call(command, key, unpack(items, first, last))
    else
      reply = redis.call(command, unpack(items, first, last))
    end
    if type(reply) == 'table' then
      for index = 1, #reply do
        replies[#replies + 1] = reply[index]
      end
    end
  end
  return replies
end

local count = #KEYS - 2
local ttl, operations = ARGV[1], ARGV[2]
local tombstones_key, expiries_key = KEYS[1], KEYS[2]
local skip = tonumber(ARGV[4]) + 1
local sub = string.sub
if #operations ~= count then
  return redis.error_reply('pubsync: ' .. count .. ' changes but ' .. #operations .. ' operations')
end
local byte = string.byte
local DELETE = 100 -- string.byte('d')

local packed = ARGV[3]
if #packed ~= 8 * count then
  return redis.error_reply('pubsync: ' .. count .. ' changes but ' .. #packed .. ' bytes of versions')
end
-- Per change: its version as a number, and where its value (a write, > 0) or its version text
-- (a delete, < 0) is in ARGV.
local versions, argument, kv_keys = {}, {}, {}
local unpack_double = struct.unpack
local position = 1
for i = 1, count do
  versions[i], position = unpack_double('<d', packed, position)
  kv_keys[i] = KEYS[2 + i]
  if byte(operations, i) == DELETE then
    argument[i] = -(4 + i)
  else
    argument[i] = 4 + i
  end
end

-- Expired tombstones go, as many per call as the call can add and 100 more, so they never pile
-- up while changes come.
-- TIME before writes needs effects replication, the default since Redis 5 (a no-op there).
if redis.replicate_commands then
  redis.replicate_commands()
end
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
local prune = count + 100
local expired = redis.call('ZRANGEBYSCORE', expiries_key, '-inf', now, 'LIMIT', 0, prune)
-- When fewer than asked came back, no expired tombstone is left.
local caught_up = #expired < prune
if #expired > 0 then
  call_in_slices('HDEL', expired, 4000, tombstones_key)
  call_in_slices('ZREM', expired, 4000, expiries_key)
end

local values = call_in_slices('MGET', kv_keys, 4000)
-- Tombstones are looked up only for the keys that hold no value, when there are any.
-- `field_of[i]`: the tombstone field (the key without the kv prefix) of change i, when needed.
local fields, tombstone_index, field_of = {}, {}, {}
local asked = 0
local tombstones = {}
if redis.call('EXISTS', tombstones_key) == 1 then
  for i = 1, count do
    if not values[i] then
      asked = asked + 1
      local field = sub(kv_keys[i], skip)
      fields[asked] = field
      field_of[i] = field
      tombstone_index[i] = asked
    end
  end
  if asked > 0 then
    tombstones = call_in_slices('HMGET', fields, 4000, tombstones_key)
  end
end
-- A tombstone past its expiry that the pruning above has not reached yet counts as gone (it is
-- removed when a write replaces it). Only when pruning has a backlog: the expiry times cost a
-- ZMSCORE, whose doubles Redis formats as text.
local found, found_at = {}, {}
if not caught_up then
  for index = 1, asked do
    if tombstones[index] then
      found[#found + 1] = fields[index]
      found_at[#found] = index
    end
  end
end
local expired_at = {}
if #found > 0 then
  local scores = call_in_slices('ZMSCORE', found, 4000, expiries_key)
  for n = 1, #found do
    local score = scores[n]
    if score and tonumber(score) <= now then
      expired_at[found_at[n]] = true
    end
  end
end

-- Per key, at the index of its first change: the version it holds (stored, then as changes
-- apply), whether Redis held a value or a tombstone, and the last change applied to it.
-- `first[key]` is that index.
local first, held, had_value, had_tombstone, outcome = {}, {}, {}, {}, {}
local applied = 0
for i = 1, count do
  local key = kv_keys[i]
  local slot = first[key]
  if slot == nil then
    slot = i
    first[key] = i
    local value = values[i]
    if value then
      had_value[i] = true
      held[i] = version_of(value)
    else
      local index = tombstone_index[i]
      local tombstone = tombstones[index]
      if tombstone then
        had_tombstone[i] = true
        if not expired_at[index] then
          held[i] = tonumber(tombstone)
        end
      end
    end
  end
  local version = versions[i]
  local current = held[slot]
  if current == nil or version > current then
    held[slot] = version
    outcome[slot] = i
    applied = applied + 1
  end
end

local sets, deletes, buried, unburied, expiries = {}, {}, {}, {}, {}
local set_count, delete_count, buried_count, unburied_count = 0, 0, 0, 0
local expiry = now + tonumber(ttl)
for slot = 1, count do
  local i = outcome[slot]
  if i then
    local from = argument[i]
    if from > 0 then
      sets[set_count + 1] = kv_keys[slot]
      sets[set_count + 2] = ARGV[from]
      set_count = set_count + 2
      if had_tombstone[slot] then
        unburied_count = unburied_count + 1
        unburied[unburied_count] = field_of[slot]
      end
    else
      if had_value[slot] then
        delete_count = delete_count + 1
        deletes[delete_count] = kv_keys[slot]
      end
      local field = field_of[slot] or sub(kv_keys[slot], skip)
      buried[buried_count + 1] = field
      buried[buried_count + 2] = ARGV[-from]
      expiries[buried_count + 1] = expiry
      expiries[buried_count + 2] = field
      buried_count = buried_count + 2
    end
  end
end
if set_count > 0 then
  call_in_slices('MSET', sets, 2000)
end
if delete_count > 0 then
  call_in_slices('DEL', deletes, 4000)
end
-- A write over a tombstone removes it from the hash only: its expiry stays in the sorted set
-- until pruned (a later delete's ZADD moves it), which saves a ZREM per key.
if unburied_count > 0 then
  call_in_slices('HDEL', unburied, 4000, tombstones_key)
end
if buried_count > 0 then
  call_in_slices('HSET', buried, 4000, tombstones_key)
  call_in_slices('ZADD', expiries, 4000, expiries_key)
end
return applied
