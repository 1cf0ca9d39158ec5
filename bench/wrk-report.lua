-- wrk script for `npm run bench`: prints one JSON line (prefixed WRK_JSON) at
-- the end with requests, socket errors and latency percentiles (microseconds).
-- With WRK_COUNT_STATUS=1 it also inspects every response and counts the
-- non-2xx ones exactly (wrk itself only counts status >= 400); that costs some
-- throughput, so the throughput runs leave it off.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

if os.getenv("WRK_COUNT_STATUS") == "1" then
   function init(args)
      non2xx = 0
      ok2xx = 0
   end

   function response(status, headers, body)
      if status >= 200 and status < 300 then
         ok2xx = ok2xx + 1
      else
         non2xx = non2xx + 1
      end
   end
end

function done(summary, latency, requests)
   local non2xx, ok2xx = 0, 0
   local counted = false
   for _, t in ipairs(threads) do
      local n = t:get("non2xx")
      if n ~= nil then
         counted = true
         non2xx = non2xx + n
         ok2xx = ok2xx + (t:get("ok2xx") or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"counted":%s,"non2xx":%d,"ok2xx":%d,' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      tostring(counted), non2xx, ok2xx,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
