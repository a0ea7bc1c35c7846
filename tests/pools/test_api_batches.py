"""issue-batch and release over HTTP."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from pools.code_services import BATCH_MAX
from pools.models import Code, CodeIssue, Pool
from tests.factories import make_api_key, make_codes, make_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


@pytest.fixture
def api():
    _, key = make_api_key(name="mailer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_issue_batch_then_retry_then_release_one(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["B1", "B2", "B3"])
    url = f"/api/pools/{pool.slug}/issue-batch"
    body = {"customers": ["a", "b"], "idempotency_key": "news-1"}

    first = api.post(url, body, format="json")
    again = api.post(url, body, format="json")

    assert first.status_code == 200, first.json()
    issued = first.json()["issued"]
    assert [(i["customer"], i["code"]["customer"]) for i in issued] == [("a", "a"), ("b", "b")]
    codes = [i["code"]["code"] for i in issued]
    assert [i["code"]["code"] for i in again.json()["issued"]] == codes
    assert [i["again"] for i in again.json()["issued"]] == [True, True]
    assert first.json()["short"] == []

    code = issued[0]["code"]["code"]
    release = {"code": code, "pool": pool.slug, "idempotency_key": "news-1:a"}
    wrong = api.post("/api/codes/release", {**release, "idempotency_key": "x"}, format="json")
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "unknown_code"
    released = api.post("/api/codes/release", release, format="json")
    assert released.status_code == 200 and released.json()["status"] == "available"
    # Recorded in the key's own namespace: no other key can name it.
    assert CodeIssue.objects.get(code__code=code).released_key.endswith(":news-1:a")


def test_codes_issued_under_the_longest_keys_are_given_back_under_them(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["L1", "L2", "L3"])
    key = "m" * 200  # the longest key the API takes: stored as its hash, in its namespace
    single = api.post(
        f"/api/pools/{pool.slug}/issue", {"customer": "a", "idempotency_key": key}, format="json"
    ).json()["code"]
    batch = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        {"customers": ["b"], "idempotency_key": key[:190]},
        format="json",
    ).json()["issued"][0]["code"]["code"]

    for code, issued_under in ((single, key), (batch, key[:190] + ":b")):
        release = {"code": code, "pool": pool.slug, "idempotency_key": issued_under}
        answer = api.post("/api/codes/release", release, format="json")
        assert (answer.status_code, answer.json()["status"]) == (200, "available"), code
    assert Code.objects.filter(pool=pool, status="available").count() == 3


def test_the_key_that_issued_a_batch_of_personal_codes_hears_why_another_cannot_use_one(api):
    pool = make_pool(launched=True, require_issue_before_redeem=True, issued_validity_days=7)
    make_codes(pool, ["P1", "P2"])
    answer = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        {"customers": ["alice"], "idempotency_key": "news"},
        format="json",
    ).json()
    code = answer["issued"][0]["code"]["code"]
    _, other_key = make_api_key(name="other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {other_key}")

    def check(client, customer):
        body = {"code": code, "customer": customer, "pool": pool.slug}
        return client.post("/api/codes/check", body, format="json").json()

    assert check(api, "bob")["error"]["code"] == "not_issued_to_customer"
    assert check(other, "bob")["error"]["code"] == "unknown_code"
    assert check(other, "alice")["valid"] is True


def test_issue_batch_lists_customers_left_without_a_code(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["B1"])
    answer = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        {"customers": ["a", "b"], "idempotency_key": "k"},
        format="json",
    )
    assert answer.status_code == 200 and answer.json()["short"] == ["b"]


def test_issue_batch_takes_ten_thousand_customers_in_one_body(api):
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{i}" for i in range(10)])
    customers = [f"customer-{i:06d}-" + "x" * 150 for i in range(BATCH_MAX)]
    answer = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        json.dumps({"customers": customers, "idempotency_key": "big"}),
        content_type="application/json",
    )
    assert answer.status_code == 200
    assert len(answer.json()["issued"]) == 10 and len(answer.json()["short"]) == BATCH_MAX - 10
    too_many = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        {"customers": customers + ["one-more"], "idempotency_key": "big"},
        format="json",
    )
    assert too_many.status_code == 400


def test_issue_batch_answers_paused_and_unknown_pools_like_single_issue(api):
    pool = make_pool(launched=True)
    Pool.objects.filter(pk=pool.pk).update(status=Pool.Status.PAUSED)
    body = {"customers": ["a"], "idempotency_key": "k"}
    assert api.post(f"/api/pools/{pool.slug}/issue-batch", body, format="json").status_code == 409
    assert api.post("/api/pools/nope/issue-batch", body, format="json").status_code == 404


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customers=st.one_of(st.lists(st.text(max_size=30), max_size=12), JSON_VALUES),
    key=st.one_of(st.text(max_size=30), JSON_VALUES),
)
def test_issue_batch_input_never_fails_and_never_gives_a_code_twice(api, customers, key):
    pool = make_pool(launched=True)
    make_codes(pool, [f"P{i}" for i in range(8)])
    answer = api.post(
        f"/api/pools/{pool.slug}/issue-batch",
        {"customers": customers, "idempotency_key": key},
        format="json",
    )
    assert answer.status_code in (200, 400), answer.content
    if answer.status_code == 200:
        body = answer.json()
        holders = [i["customer"] for i in body["issued"]]
        assert len(holders) == len(set(holders))
        codes = [i["code"]["code"] for i in body["issued"]]
        assert len(codes) == len(set(codes))
        assert len(holders) + len(body["short"]) == len({c.strip() for c in customers})
    issued = Code.objects.filter(pool=pool, status="issued")
    assert issued.count() == CodeIssue.objects.filter(pool=pool).count()
