-- pubsync: apply a chunk of versioned changes, each only when it is newer than what Redis holds.
--
-- KEYS: for change i, KEYS[2i-1] is its `kv:` key and KEYS[2i] its tombstone key.
-- ARGV[1]: the tombstone TTL in milliseconds; then for change i, from ARGV[3i-1] on:
--   the operation ("w" write, "d" delete), the version (decimal text), the value ("" for deletes).
-- Returns how many changes were applied.
--
-- The stored version of a live key is its value's `_timestamp`; of a deleted key, its tombstone.
-- A change is applied when there is no stored version or its version is greater (an equal
-- version, a redelivered message, is not). Versions are compared as Lua numbers (doubles, read
-- with strtod): microsecond Unix times (~1.7e9 s) are 4 doubles apart per microsecond, so their
-- order is kept. Versions are stored as the text received and never formatted by Lua, whose
-- tostring keeps only 14 digits.
--
-- Shape: read every key and tombstone with two MGETs, work the changes out in order in a Lua
-- table (a key may come several times), then write the outcome with one MSET, one DEL and one
-- SET PX per new tombstone. Far fewer redis.call()s than one GET/SET per change.

-- The version of a stored value: the number after the last `"_timestamp"` of the text (the
-- original appends the top-level one last), else whatever cjson finds, else nil (older than
-- any change).
local function version_of(value)
  local last = nil
  local from = 1
  while true do
    local _, finish = string.find(value, '"_timestamp"', from, true)
    if finish == nil then
      break
    end
    last = finish
    from = finish + 1
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
  local replies = {}
  for first = 1, #items, step do
    local last = math.min(first + step - 1, #items)
    local reply = redis.call(command, unpack(items, first, last))
    if type(reply) == 'table' then
      for index = 1, #reply do
        replies[#replies + 1] = reply[index]
      end
    end
  end
  return replies
end

local count = #KEYS / 2
-- Refuse the whole chunk before writing anything if a version is not a number.
for i = 1, count do
  if tonumber(ARGV[3 * i]) == nil then
    return redis.error_reply('pubsync: the version of change ' .. i .. ' is not a number')
  end
end

local kv_keys, tombstone_keys = {}, {}
for i = 1, count do
  kv_keys[i] = KEYS[2 * i - 1]
  tombstone_keys[i] = KEYS[2 * i]
end
local values = call_in_slices('MGET', kv_keys, 4000)
local tombstones = call_in_slices('MGET', tombstone_keys, 4000)

-- Per key, what Redis holds and, once a change is applied, what it will hold.
local states, order = {}, {}
local applied = 0
for i = 1, count do
  local key = kv_keys[i]
  local state = states[key]
  if state == nil then
    state = {
      tombstone = tombstone_keys[i],
      had_value = values[i] ~= false,
      had_tombstone = tombstones[i] ~= false,
    }
    if values[i] then
      state.version = version_of(values[i])
    elseif tombstones[i] then
      state.version = tonumber(tombstones[i])
    end
    states[key] = state
    order[#order + 1] = key
  end
  local at = 3 * i - 1
  local version = tonumber(ARGV[at + 1])
  if state.version == nil or version > state.version then
    state.version = version
    state.changed = true
    if ARGV[at] == 'w' then
      state.live = true
      state.value = ARGV[at + 2]
    else
      state.live = false
      state.version_text = ARGV[at + 1]
    end
    applied = applied + 1
  end
end

local ttl = ARGV[1]
local sets, deletes = {}, {}
for _, key in ipairs(order) do
  local state = states[key]
  if state.changed then
    if state.live then
      sets[#sets + 1] = key
      sets[#sets + 1] = state.value
      if state.had_tombstone then
        deletes[#deletes + 1] = state.tombstone
      end
    else
      if state.had_value then
        deletes[#deletes + 1] = key
      end
      redis.call('SET', state.tombstone, state.version_text, 'PX', ttl)
    end
  end
end
if #sets > 0 then
  call_in_slices('MSET', sets, 2000)
end
if #deletes > 0 then
  call_in_slices('DEL', deletes, 4000)
end
return applied
