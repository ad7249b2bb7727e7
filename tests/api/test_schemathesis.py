"""Issue 15: the OpenAPI schema, fuzzed by schemathesis against the running site (pytest-django's
``live_server``, a real HTTP server on loopback): no endpoint answers 500 for any generated input, valid
(positive) or not (negative). Bounded: a few examples per operation and mode, well under a minute."""

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

from api.tokens import create_token  # noqa: E402
from tests.factories import IndividualFactory, UserFactory  # noqa: E402
from tests.web.helpers import gallery_photo, review_setup  # noqa: E402

EXAMPLES = 5  # per operation and generation mode
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
# any string is a catalogue id (imports bring their own), so this operation has no invalid input to generate
NO_NEGATIVE = {"GET /api/v1/individuals/{catalogue_id}/"}


def _fuzz(operation, mode, base_url: str, headers: dict, sent: list) -> list[str]:
    """Send ``EXAMPLES`` generated requests to one operation; the server errors met, described."""
    errors: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case):
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        sent.append((case.method, case.path, response.status_code))
        if response.status_code >= 500:
            errors.append(
                f"{response.status_code} {case.method} {case.formatted_path} {case.query} {case.body!r}"[:400]
            )

    run()
    return errors


@pytest.mark.django_db(transaction=True)
def test_no_endpoint_returns_a_server_error(live_server, settings):
    settings.API_TOKEN_RATE = "100000/hour"  # the fuzzer sends a few hundred requests with one token
    photo, individuals, _ = review_setup()
    gallery_photo(IndividualFactory(), sighting__latitude=64.1, sighting__longitude=-21.9)
    _, raw = create_token(UserFactory(email="fuzz@example.org", role="admin"), "schemathesis")
    headers = {"Authorization": f"Bearer {raw}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10  # every endpoint and method in the schema is fuzzed
    sent: list = []
    errors = [
        error
        for op in operations
        for mode in MODES
        if not (mode == schemathesis.GenerationMode.NEGATIVE and op.label in NO_NEGATIVE)
        for error in _fuzz(op, mode, live_server.url, headers, sent)
    ]
    assert errors == []
    assert {(method, path) for method, path, _ in sent} == {(op.method.upper(), op.path) for op in operations}
    assert any(400 <= code < 500 for *_, code in sent)  # the negative cases were refused, not served
    photo.refresh_from_db()  # the live site kept working through it
    assert photo.pk and individuals
