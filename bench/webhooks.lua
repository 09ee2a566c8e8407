-- wrk script for bench/serve-load.sh: each connection posts signed webhooks from
-- the file in WEBHOOKS (signature<TAB>body per line), every one a new contact. The
-- threads take disjoint lines, so no webhook is sent twice while the file lasts.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local count = tonumber(os.getenv("WRK_THREADS") or "1")
  webhooks = {}
  local n = 0
  for line in io.lines(os.getenv("WEBHOOKS")) do
    if n % count == index then
      local tab = line:find("\t", 1, true)
      table.insert(webhooks, { line:sub(1, tab - 1), line:sub(tab + 1) })
    end
    n = n + 1
  end
  next_one = 1
  available = #webhooks
  refused = 0
end

-- With WEBHOOK_PACE_MS, each connection waits that long between its webhooks: a
-- steady rate of connections × 1000 / pace a second.
local pace = tonumber(os.getenv("WEBHOOK_PACE_MS") or "0")

function delay()
  return pace
end

function request()
  local w = webhooks[next_one]
  next_one = next_one % #webhooks + 1
  return wrk.format("POST", "/webhooks/ghl",
    { ["content-type"] = "application/json", ["x-ghl-signature"] = w[1] }, w[2])
end

function response(status, headers, body)
  if status ~= 200 then
    refused = refused + 1
  end
end

function done(summary, latency, requests)
  local available, refused = 0, 0
  for _, t in ipairs(threads) do
    available = available + t:get("available")
    refused = refused + t:get("refused")
  end
  -- The figures bench/serve-load.sh reads.
  io.write(string.format("available %d\nrefused %d\n", available, refused))
  for _, p in ipairs({ 50, 90, 99 }) do
    io.write(string.format("p%d_us %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("requests %d\nseconds %.3f\n", summary.requests, summary.duration / 1e6))
end
