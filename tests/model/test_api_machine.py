"""The HTTP API and the reference model (rules.py), driven side by side.

The machine of test_machine.py again (world.py: the pool, the clock, staff's operations through
the services, the comparison of codes and counters after every step), but other systems'
operations go through the JSON API, in process, with one API key that may do everything
everywhere: issue, issue-batch, mark-issued, check, redeem and release. Idempotency keys over
the API belong to the API key; the model's keys are what the client sends. Each answer is
compared with the model's as the API words it (docs/http-api.md): its status (404
unknown_code, 410 pool_ended and withdrawn, 409 the other refusals; a check's refusal is 200
with `valid` false) and `error.code`, and what the key is not told (rules.hidden_from_api_key).

The API's limits are raised so that they never answer instead of the rules; each sequence
starts with empty caches (the limits' counters, the cached pools and keys).
"""

import pytest
from django.core.cache import cache, caches
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test
from rest_framework.test import APIClient

from pools.shared_cache import shared_reset
from tests.factories import make_api_key
from tests.model import rules as model
from tests.model.world import (
    CODE_NUMBERS,
    CUSTOMERS,
    KEYS,
    MACHINE_SETTINGS,
    ORDER_REFERENCES,
    PoolWorld,
    outcome,
)

pytestmark = pytest.mark.django_db

# Final: the pool is over, the code out of use for good (docs/http-api.md, "Errors").
GONE = {"pool_ended", "withdrawn"}


def status_of(reason: str) -> int:
    """Return the HTTP status the API answers a refusal with."""
    if reason == "unknown_code":
        return 404
    return 410 if reason in GONE else 409


class ApiPoolMachine(PoolWorld):
    """Other systems' operations through the HTTP API, with one key: told only what an API key
    may hear."""

    def __init__(self):
        super().__init__()
        # The limits' counters and the cached pools and keys are kept by pool ID and key: a
        # pool made in a sequence rolled back can come again under the same ID on SQLite.
        cache.clear()
        caches["local"].clear()
        shared_reset()
        _, secret = make_api_key(name="model")
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")

    def post(self, path: str, **body):
        response = self.client.post(f"/api/{path}", body, format="json")
        assert response.status_code < 500, response.content[:300]
        return response

    def answers(self, response, expected):
        """Assert that the API's answer says what the model's outcome says."""
        self.told = expected
        got = (response.status_code, response.json())
        if expected[0] == "ok":
            assert response.status_code == 200, f"API {got}, model {expected}"
        else:
            reason = expected[1]
            assert (response.status_code, response.json()["error"]["code"]) == (
                status_of(reason),
                reason,
            ), f"API {got}, model {expected}"

    def expected(self, model_call, text: str, customer: str, *, marking: bool = False):
        """Return the model's outcome as the API key hears it; the model changes only if the
        key is told of the code."""
        if model.hidden_from_api_key(self.pool_of(text)[1], text, customer, marking=marking):
            return "refused", "unknown_code"
        return outcome(model_call)

    # Handing codes out

    @rule(customer=CUSTOMERS, key=KEYS)
    def issue(self, customer, key):
        response = self.post(
            f"pools/{self.pool.slug}/issue", customer=customer, idempotency_key=key
        )
        expected = self.told = outcome(
            lambda: model.issue_candidates(self.model, customer, key, self.now)
        )
        if expected[0] == "refused":
            self.answers(response, expected)
            return
        assert response.status_code == 200, f"API {response.json()}, model allows {expected}"
        taken = response.json()["code"]
        assert taken in expected[1], f"issued {taken}, the model allows {expected[1]}"
        model.issue(self.model, customer, key, self.now, taken=taken)
        self.handed_out = taken

    @precondition(lambda self: self.model.status == model.ACTIVE)
    @rule(customers=st.lists(CUSTOMERS, min_size=1, max_size=4), key=KEYS)
    def issue_batch(self, customers, key):
        response = self.post(
            f"pools/{self.pool.slug}/issue-batch", customers=customers, idempotency_key=key
        )
        if not key:
            # The API asks for a batch's key (the shell does not).
            assert response.status_code == 400, response.json()
            assert response.json()["error"]["code"] == "invalid"
            return
        assert response.status_code == 200, response.json()
        batch = response.json()
        assert batch["limited"] == [], batch
        for item in batch["issued"]:
            customer, taken = item["customer"], item["code"]["code"]
            derived = f"{key}:{customer}"
            allowed = model.issue_candidates(self.model, customer, derived, self.now)
            assert taken in allowed, f"{customer} got {taken}, not {allowed}"
            model.issue(self.model, customer, derived, self.now, taken=taken)
            self.handed_out = taken
        for customer in batch["short"]:
            derived = f"{key}:{customer}"
            expected = outcome(
                lambda c=customer, d=derived: model.issue_candidates(self.model, c, d, self.now)
            )
            assert expected == ("refused", "no_codes_left"), f"{customer} left short: {expected}"

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS)
    def mark_issued(self, number, customer):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        expected = self.expected(
            lambda: model.mark_issued(pool_model, text, customer, self.now),
            text,
            customer,
            marking=True,
        )
        response = self.post("codes/mark-issued", code=text, customer=customer, pool=pool.slug)
        self.answers(response, expected)
        if expected[0] == "ok":
            self.handed_out = text

    def release_under(self, text: str, key: str):
        pool, pool_model = self.pool_of(text)
        response = self.post("codes/release", code=text, pool=pool.slug, idempotency_key=key)
        if not key:
            # The API asks for the key (the shell answers unknown_code).
            assert response.status_code == 400, response.json()
            return
        self.answers(response, outcome(lambda: model.release(pool_model, text, key)))

    # Redeeming codes

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS)
    def check(self, number, customer):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        expected = self.expected(
            lambda: model.check(pool_model, text, customer, self.now), text, customer
        )
        response = self.post("codes/check", code=text, customer=customer, pool=pool.slug)
        # A check's refusal is an answer, not an error: 200 with the reason.
        assert response.status_code == 200, response.json()
        body = response.json()
        self.told = expected
        got = ("ok", None) if body["valid"] else ("refused", body["error"]["code"])
        assert got[0] == expected[0] and (got[0] == "ok" or got[1] == expected[1]), (
            f"API {body}, model {expected}"
        )

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS, reference=ORDER_REFERENCES)
    def redeem(self, number, customer, reference):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        expected = self.expected(
            lambda: model.redeem(pool_model, text, customer, reference, self.now), text, customer
        )
        response = self.post(
            "codes/redeem",
            code=text,
            customer=customer,
            pool=pool.slug,
            order_reference=reference,
        )
        self.answers(response, expected)


def raised_limits(settings):
    """Raise the API's limits high enough never to answer in a sequence (30 steps of a few
    calls each)."""
    settings.API_RATE_PER_CUSTOMER = "1000000/min"
    settings.API_FAILED_CHECKS_PER_KEY = settings.API_FAILED_CHECKS_PER_POOL = 1_000_000
    settings.API_ISSUE_RATE_PER_KEY = "1000000/min"
    settings.API_ISSUE_RATE_PER_CUSTOMER = "1000000/h"


def test_the_api_agrees_with_the_model(settings):
    raised_limits(settings)
    run_state_machine_as_test(ApiPoolMachine, settings=MACHINE_SETTINGS)
