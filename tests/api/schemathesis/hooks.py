"""Lanyard's own check for schemathesis (tests/api/tests/schemathesis.rs loads
this file through SCHEMATHESIS_HOOKS).

`positive_data_acceptance` cannot tell a request the schema should have
refused from one refused for a reason no schema states: a grant for an email
that is not an active member is `422 member_not_eligible`, a valid request all
the same. So that check allows 422 on the grant operations, and this one says
what the schema promises everywhere: a request it allows is never refused as
malformed (`400 malformed_request`) or invalid (`422 validation_failed`).
"""

import json

import schemathesis


@schemathesis.check
def schema_valid_requests_pass_validation(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code not in (400, 422):
        return None
    try:
        code = json.loads(response.content)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = None
    # A body that cannot be read at all is documented as 400 on every endpoint;
    # schemathesis never sends one, so any 400 or 422 below is about the data.
    if code in ("malformed_request", "validation_failed"):
        raise AssertionError(
            f"a request openapi.yaml allows was refused: {response.status_code} {code}: "
            f"{response.content[:300]!r}"
        )
    return None
