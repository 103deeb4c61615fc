"""The layers of `Connector.execute()`, one concern each; `_connector.py` composes them.

_idempotency  claim the key, single-flight, heartbeat, settle; stored-result codec
_retry        the retry loop: delay, shared 429 pause, the call's end
_auth         credentials per attempt; 401 -> refresh -> resend once (not a retry)
_admission    breaker + limiter + budget (+ slot) per attempt; the breaker fed after it
_attempt      one HTTP exchange (or a guarded call), classified as an `Outcome`
_concurrency  the fleet-wide slot an attempt holds at the vendor
_outcome      `Outcome` and its named constructors; answers and errors classified
_request      names checked, the key scoped, the request built, the `Call`
_call         what every layer shares; _tasks: cancellation-safe background work
"""
