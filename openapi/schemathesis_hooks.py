"""Hooks for the contract fuzzing run (.ci/schemathesis.sh).

An `Idempotency-Key` names one logical request: a client makes a fresh key for each new
request and sends the same key only when it retries that request. A generator draws keys from
a small space and reuses them for unrelated requests, which the API rightly answers with 422
`idempotency_key_reused` or with a replay of an earlier answer (whose resource may since have
been deleted). So generated requests go without the header; keys, replays, reuse and the 400
for a malformed key are tested in tests/idempotency.rs.
"""

import schemathesis


@schemathesis.hook
def filter_headers(ctx, headers):
    return not headers or all(name.lower() != "idempotency-key" for name in headers)
