-- POST /api/webhooks/fal: deliveries signed beforehand (Ed25519 can't be done in Lua), one
-- file per thread, each line "request_id <TAB> timestamp <TAB> signature <TAB> body".
-- Every delivery finishes a different job; a thread that runs out starts over (duplicates,
-- which bench/run.py detects by counting the jobs actually finished).
-- args: <file prefix: thread n reads "<prefix>.<n>">
local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  deliveries = {}
  for line in io.lines(args[1] .. "." .. thread_id) do
    local request_id, timestamp, signature, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
    deliveries[#deliveries + 1] = wrk.format("POST", "/api/webhooks/fal", {
      ["Content-Type"] = "application/json",
      ["X-Fal-Webhook-Request-Id"] = request_id,
      ["X-Fal-Webhook-User-Id"] = "fal-simulator-user",
      ["X-Fal-Webhook-Timestamp"] = timestamp,
      ["X-Fal-Webhook-Signature"] = signature,
    }, body)
  end
  sent = 0
end

function request()
  sent = sent + 1
  return deliveries[((sent - 1) % #deliveries) + 1]
end
