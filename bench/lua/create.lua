-- POST /api/videos: a fresh Idempotency-Key on every request, users taken round-robin.
-- args: <file of API keys, one a line> <key prefix, unique per run> <JSON body> <threads>
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
  counter = 0
end

function request()
  counter = counter + 1
  local key = keys[((counter * threads + thread_id) % #keys) + 1]
  return wrk.format("POST", "/api/videos", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
    ["Idempotency-Key"] = prefix .. "-" .. thread_id .. "-" .. counter,
  }, body)
end
