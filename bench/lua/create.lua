-- POST /api/videos (or another path taking the create's body, e.g. /api/videos/quote), users
-- taken round-robin, a fresh Idempotency-Key on every request unless the prefix is "-".
-- args: <file of API keys, one a line> <key prefix, unique per run, or -> <JSON body> <threads>
--       [path, default /api/videos]
local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  keys = {}
  for line in io.lines(args[1]) do keys[#keys + 1] = line end
  prefix = args[2]
  body = args[3]
  threads = tonumber(args[4])
  path = args[5] or "/api/videos"
  counter = 0
end

function request()
  counter = counter + 1
  local key = keys[((counter * threads + thread_id) % #keys) + 1]
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }
  if prefix ~= "-" then
    headers["Idempotency-Key"] = prefix .. "-" .. thread_id .. "-" .. counter
  end
  return wrk.format("POST", path, headers, body)
end
