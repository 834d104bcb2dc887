-- POST /api/videos/quote: the create's body priced (no Idempotency-Key), users round-robin.
-- args: <file of API keys, one a line> <JSON body> <threads>
local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  keys = {}
  for line in io.lines(args[1]) do keys[#keys + 1] = line end
  body = args[2]
  threads = tonumber(args[3])
  counter = 0
end

function request()
  counter = counter + 1
  local key = keys[((counter * threads + thread_id) % #keys) + 1]
  return wrk.format("POST", "/api/videos/quote", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }, body)
end
