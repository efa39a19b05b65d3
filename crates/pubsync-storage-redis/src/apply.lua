-- pubsync: apply a chunk of versioned changes, each only when it is newer than what Redis holds.
--
-- KEYS: for change i, KEYS[2i-1] is its `kv:` key and KEYS[2i] its tombstone key.
-- ARGV[1]: the tombstone TTL in milliseconds; ARGV[2]: the operations, one byte per change
-- (`w` write, `d` delete); ARGV[3]: the versions, 8 bytes per change (little-endian IEEE 754
-- doubles, read with struct.unpack: no strtod, one argument for the chunk); then per change, in
-- order, ARGV[3+i]: a write's value, or a delete's version as decimal text for its tombstone.
-- Returns how many changes were applied.
--
-- The stored version of a live key is its value's `_timestamp`; of a deleted key, its tombstone.
-- A change is applied when there is no stored version or its version is greater (an equal
-- version, a redelivered message, is not). Versions are compared as Lua numbers (doubles; stored
-- ones read with strtod): microsecond Unix times (~1.7e9 s) are 4 doubles apart per microsecond, so their
-- order is kept. Versions are stored as the text received and never formatted by Lua, whose
-- tostring keeps only 14 digits.
--
-- Shape: one MGET of the keys, one MGET of the tombstones of the keys that hold no value, the
-- changes worked out in order in flat arrays (a key may come several times), then one MSET,
-- one DEL and one SET PX per new tombstone. Every per-change step counts: a script call of
-- 1000 changes spends most of its time passing arguments and running these loops, so they
-- avoid per-key tables, `tonumber` (strtod) of the incoming versions and string building.

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

-- redis.call(command, items...) in slices of `step` items (Lua's unpack has a limit of a few
-- thousand values); the replies of MGET are concatenated.
local function call_in_slices(command, items, step)
  local count = #items
  if count <= step then
    return redis.call(command, unpack(items))
  end
  local replies = {}
  for first = 1, count, step do
    local reply = redis.call(command, unpack(items, first, math.min(first + step - 1, count)))
    if type(reply) == 'table' then
      for index = 1, #reply do
        replies[#replies + 1] = reply[index]
      end
    end
  end
  return replies
end

local count = #KEYS / 2
local ttl, operations = ARGV[1], ARGV[2]
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
  kv_keys[i] = KEYS[2 * i - 1]
  if byte(operations, i) == DELETE then
    argument[i] = -(3 + i)
  else
    argument[i] = 3 + i
  end
end

local values = call_in_slices('MGET', kv_keys, 4000)
-- Tombstones are looked up only for the keys that hold no value.
local tombstone_keys, tombstone_index = {}, {}
local asked = 0
for i = 1, count do
  if not values[i] then
    asked = asked + 1
    tombstone_keys[asked] = KEYS[2 * i]
    tombstone_index[i] = asked
  end
end
local tombstones = {}
if asked > 0 then
  tombstones = call_in_slices('MGET', tombstone_keys, 4000)
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
      local tombstone = tombstones[tombstone_index[i]]
      if tombstone then
        had_tombstone[i] = true
        held[i] = tonumber(tombstone)
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

local sets, deletes = {}, {}
local set_count, delete_count = 0, 0
for slot = 1, count do
  local i = outcome[slot]
  if i then
    local from = argument[i]
    if from > 0 then
      sets[set_count + 1] = kv_keys[slot]
      sets[set_count + 2] = ARGV[from]
      set_count = set_count + 2
      if had_tombstone[slot] then
        delete_count = delete_count + 1
        deletes[delete_count] = KEYS[2 * slot]
      end
    else
      if had_value[slot] then
        delete_count = delete_count + 1
        deletes[delete_count] = kv_keys[slot]
      end
      redis.call('SET', KEYS[2 * slot], ARGV[-from], 'PX', ttl)
    end
  end
end
if set_count > 0 then
  call_in_slices('MSET', sets, 2000)
end
if delete_count > 0 then
  call_in_slices('DEL', deletes, 4000)
end
return applied
