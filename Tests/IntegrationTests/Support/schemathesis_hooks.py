"""schemathesis hooks for SchemathesisTests: every tenth request with a JSON object body goes out
with a body over the server's 1 MiB limit, so the fuzzing run includes bodies over the size limit
and checks their answers (413, a problem document) against the OpenAPI document."""
import itertools

import schemathesis

LIMIT = 1 << 20
_cases = itertools.count()


@schemathesis.hook
def before_call(context, case, kwargs):
    if isinstance(case.body, dict) and next(_cases) % 10 == 9:
        case.body = dict(case.body, padding="x" * (LIMIT + 1))
