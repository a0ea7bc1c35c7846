"""Issuing limits: per API key, per customer per pool (counted per customer inside a batch), and
a pool's daily cap; answered 429 with Retry-After, never refusing a retry its code."""

import threading
from collections import Counter

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from pools.models import CodeIssue
from pools.services import pool_update
from pools.shared_cache import shared_reset
from tests.factories import make_api_key, make_codes, make_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


def api_client() -> APIClient:
    _, secret = make_api_key(name="issuer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def issue(client, pool, customer, key=""):
    body = {"customer": customer, "idempotency_key": key}
    return client.post(f"/api/pools/{pool.slug}/issue", body, format="json")


def batch(client, pool, customers, key="b"):
    body = {"customers": customers, "idempotency_key": key}
    return client.post(f"/api/pools/{pool.slug}/issue-batch", body, format="json")


def refused(answer, code):
    assert answer.status_code == 429, answer.content[:300]
    assert answer.json()["error"]["code"] == code
    assert int(answer["Retry-After"]) >= 0 and answer.json()["error"]["retry_after"] > 0
    return True


@pytest.fixture
def limits(settings):
    settings.API_ISSUE_RATE_PER_KEY = "1000/min"
    settings.API_ISSUE_RATE_PER_CUSTOMER = "1000/h"
    return settings


def test_a_key_issues_at_most_its_rate_counting_each_customer_of_a_batch(limits):
    limits.API_ISSUE_RATE_PER_KEY = "4/min"
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(10)])
    client, other = api_client(), api_client()

    assert batch(client, pool, ["a", "b", "c"]).status_code == 200
    assert refused(batch(client, pool, ["d", "e"], key="b2"), "issue_rate_limited")
    assert issue(client, pool, "d").status_code == 200
    assert refused(issue(client, pool, "e"), "issue_rate_limited")
    # Nothing of the refused batch was issued; another key has its own rate.
    assert CodeIssue.objects.count() == 4
    assert issue(other, pool, "e").status_code == 200


def test_a_customer_gets_at_most_their_limit_of_a_pool_whichever_key_asks(limits):
    limits.API_ISSUE_RATE_PER_CUSTOMER = "2/h"
    pool, elsewhere = make_pool(launched=True), make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(10)])
    make_codes(elsewhere, ["E1"])
    client, other = api_client(), api_client()

    first = issue(client, pool, "alice", key="m1").json()["code"]
    assert issue(other, pool, "alice", key="m2").status_code == 200
    assert refused(issue(client, pool, "alice", key="m3"), "customer_issue_limit")
    # A retry hands out nothing new: it is never refused its code.
    assert issue(client, pool, "alice", key="m1").json()["code"] == first
    # Counted per pool, and per customer inside a batch.
    assert issue(client, elsewhere, "alice").status_code == 200
    answer = batch(client, pool, ["bob", "alice", "carol"]).json()
    assert [item["customer"] for item in answer["issued"]] == ["bob", "carol"]
    assert answer["limited"] == ["alice"]


def test_a_pools_daily_cap_stops_issuing_until_tomorrow_and_shows_on_its_page(
    limits, manager_client
):
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(10)])
    pool_update(pool=pool, daily_issue_cap=3)
    client = api_client()

    answer = batch(client, pool, ["a", "b", "c", "d", "e"]).json()
    retry = batch(client, pool, ["a", "b", "c", "d", "e"]).json()

    assert [item["customer"] for item in answer["issued"]] == ["a", "b", "c"]
    assert answer["limited"] == ["d", "e"]
    assert [item["again"] for item in retry["issued"]] == [True, True, True]
    assert refused(issue(client, pool, "f"), "daily_issue_cap")
    page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk]))
    assert "3 of 3" in page.content.decode()
    # Raised on the pool page, it holds at once.
    pool_update(pool=pool, daily_issue_cap=4)
    assert issue(client, pool, "f").status_code == 200


def test_what_was_not_issued_is_not_counted(limits):
    limits.API_ISSUE_RATE_PER_CUSTOMER = "1/h"
    limits.API_ISSUE_RATE_PER_KEY = "2/min"
    pool = make_pool(launched=True)
    client = api_client()

    assert issue(client, pool, "alice").json()["error"]["code"] == "no_codes_left"
    answer = batch(client, pool, ["alice"]).json()
    assert answer["short"] == ["alice"], answer
    make_codes(pool, ["C1", "C2"])

    assert issue(client, pool, "alice").status_code == 200


@pytest.mark.postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_of_one_key_never_pass_its_rate_together(limits):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    limits.API_ISSUE_RATE_PER_KEY = "25/min"
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(100)])
    _, secret = make_api_key(name="drain")
    answers = []

    def drain(n):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
        customers = [f"t{n}-{i}" for i in range(10)]
        answers.append(batch(client, pool, customers, key=f"k{n}").status_code)
        connection.close()

    threads = [threading.Thread(target=drain, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers) == [200, 200, 429, 429]
    assert CodeIssue.objects.count() == 20


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    calls=st.lists(
        st.tuples(
            st.sampled_from(["issue", "batch"]),
            st.lists(st.sampled_from(["a", "b", "c", " a"]), min_size=1, max_size=4),
            st.sampled_from(["", "k1", "k2", "k3"]),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_no_sequence_of_calls_gives_a_customer_more_than_the_limit(limits, calls):
    from django.core.cache import cache, caches

    cache.clear()
    caches["local"].clear()
    shared_reset()
    limits.API_ISSUE_RATE_PER_CUSTOMER = "2/h"
    pool = make_pool(launched=True)
    make_codes(pool, [f"{pool.slug}-{n}" for n in range(40)])
    client = api_client()
    first_answers = {}

    for kind, customers, key in calls:
        if kind == "issue":
            answer = issue(client, pool, customers[0], key)
            assert answer.status_code in (200, 409, 429), answer.content[:300]
            if answer.status_code == 200 and key:
                code = answer.json()["code"]
                assert first_answers.setdefault((customers[0].strip(), key), code) == code
        else:
            answer = batch(client, pool, customers, key or "k0")
            assert answer.status_code in (200, 409, 429), answer.content[:300]

    held = Counter(CodeIssue.objects.filter(pool=pool).values_list("customer", flat=True))
    assert all(count <= 2 for count in held.values()), held


def test_a_retry_whose_code_died_is_no_way_around_the_limits(limits):
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(10)])
    pool_update(pool=pool, daily_issue_cap=2)
    client = api_client()
    codes = [item["code"]["code"] for item in batch(client, pool, ["a", "b"]).json()["issued"]]
    for number, code in enumerate(codes):  # redeemed by others: dead to a and b
        body = {"code": code, "customer": f"other-{number}", "pool": pool.slug}
        assert client.post("/api/codes/redeem", body, format="json").status_code == 200

    assert refused(batch(client, pool, ["a", "b"]), "daily_issue_cap")
    assert CodeIssue.objects.count() == 2


def test_a_fallback_gives_no_more_than_its_own_cap(limits):
    fallback = make_pool(launched=True)
    pool = make_pool(fallback.campaign, launched=True)
    make_codes(fallback, [f"F{n}" for n in range(10)])
    pool_update(pool=fallback, daily_issue_cap=2)
    pool_update(pool=pool, fallback_pool=fallback)
    client = api_client()

    through = batch(client, pool, ["a", "b", "c"]).json()
    assert [item["from_fallback"] for item in through["issued"]] == [True, True, True]
    # Counted against the fallback's own cap: it is reached, directly and through the pool.
    assert refused(issue(client, fallback, "d"), "daily_issue_cap")
    assert issue(client, pool, "e").json()["error"]["code"] == "no_codes_left"


def test_only_what_a_fallback_gives_counts_against_its_cap(limits):
    fallback = make_pool(launched=True)
    pool = make_pool(fallback.campaign, launched=True)
    make_codes(pool, ["P1", "P2"])
    make_codes(fallback, ["F1", "F2", "F3"])
    pool_update(pool=fallback, daily_issue_cap=1)
    pool_update(pool=pool, fallback_pool=fallback)
    client = api_client()

    own = [issue(client, pool, customer).json()["pool"] for customer in ("a", "b")]
    assert own == [pool.slug, pool.slug]
    # The pool's own codes took nothing of the fallback's cap: its one code is still there.
    through = issue(client, pool, "c").json()
    assert through["pool"] == fallback.slug, through
    assert refused(issue(client, fallback, "d"), "daily_issue_cap")


@pytest.mark.parametrize("kind", ["issue", "batch"])
def test_a_retry_takes_nothing_of_the_limits(limits, kind):
    limits.API_ISSUE_RATE_PER_CUSTOMER = "2/h"
    limits.API_ISSUE_RATE_PER_KEY = "3/min"
    pool = make_pool(launched=True)
    make_codes(pool, [f"C{n}" for n in range(10)])
    pool_update(pool=pool, daily_issue_cap=3)
    client = api_client()

    def call(customer, key):
        if kind == "issue":
            return issue(client, pool, customer, key)
        return batch(client, pool, [customer], key)

    def code(answer):
        assert answer.status_code == 200, answer.content[:300]
        return answer.json()["code"] if kind == "issue" else answer.json()["issued"][0]["code"]

    first = code(call("alice", "m1"))
    for _ in range(3):
        assert code(call("alice", "m1")) == first
    # Alice was handed one code: she may have a second, the key and the pool two more.
    assert call("alice", "m2").status_code == 200
    assert call("bob", "m3").status_code == 200
    assert refused(call("carol", "m4"), "issue_rate_limited")


def test_a_code_from_the_fallback_counts_once_there_for_its_cap_and_the_customer(limits):
    limits.API_ISSUE_RATE_PER_CUSTOMER = "1/h"
    fallback = make_pool(launched=True)
    pool = make_pool(fallback.campaign, launched=True)
    make_codes(fallback, [f"F{n}" for n in range(5)])
    pool_update(pool=fallback, daily_issue_cap=2)
    pool_update(pool=pool, fallback_pool=fallback)
    client = api_client()

    for _ in range(3):  # the first call and two retries: one code handed out
        through = batch(client, pool, ["a"], key="news").json()
        assert [item["from_fallback"] for item in through["issued"]] == [True], through

    # Alice had her one code of the fallback; the fallback has one more to give today.
    assert refused(issue(client, fallback, "a"), "customer_issue_limit")
    assert issue(client, fallback, "b").status_code == 200
    assert refused(issue(client, fallback, "c"), "daily_issue_cap")
