-- wrk script for the relay overhead bench: POST /payments with a checkout id unique per run,
-- thread and request (RUN_ID from the environment; setup() numbers the threads).
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local run = os.getenv("RUN_ID") or tostring(os.time())
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk_test_ringpay_demo_4eC39HqLyjWDarjtT1zdp7dc"
wrk.body = '{"amount":1999,"currency":"EUR","payment_method":"pm_card_visa","description":"Order 1234 from the bench","customer_ref":"cust_42","metadata":{"order":"1234"}}'
function request()
  counter = counter + 1
  wrk.headers["X-PAYMENT-CHECKOUT-ID"] = "rb" .. run .. "-" .. tid .. "-" .. counter
  return wrk.format(nil, "/payments")
end
local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  io.write(string.format("non2xx=%d\n", summary.errors.status))
end
