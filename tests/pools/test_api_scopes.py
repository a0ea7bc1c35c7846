"""Scoped API keys: each key calls only its operations, touches only its pools, and owns its
idempotency keys (no other key, and no caller of the API, reaches the issues of another)."""

import importlib
import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from pools.code_services import code_issue
from pools.models import ApiKeyScope, ApiOperation, Code, CodeIssue
from tests.factories import make_api_key, make_campaign, make_codes, make_pool

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


def client_of(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client


def scoped(operations=ApiOperation.values, **scope) -> APIClient:
    _, secret = make_api_key(name="scoped", operations=operations, **scope)
    return client_of(secret)


def call(client, operation: str, pool_slug: str, code: str = "C1", **extra):
    """Call `operation` on the pool with a body it accepts; return (status, error code)."""
    body = {"code": code, "customer": "c", "pool": pool_slug, **extra}
    requests = {
        "issue": ("post", f"/api/pools/{pool_slug}/issue", {"customer": "c"}),
        "issue-batch": (
            "post",
            f"/api/pools/{pool_slug}/issue-batch",
            {"customers": ["c"], "idempotency_key": "k"},
        ),
        "stock": ("get", f"/api/pools/{pool_slug}/stock", None),
        "mark-issued": ("post", "/api/codes/mark-issued", body),
        "check": ("post", "/api/codes/check", body),
        "redeem": ("post", "/api/codes/redeem", body),
        "release": ("post", "/api/codes/release", {**body, "idempotency_key": "k"}),
    }
    method, url, data = requests[operation]
    answer = getattr(client, method)(url, data, format="json")
    error = (answer.json().get("error") or {}).get("code")
    return answer.status_code, error


def test_every_operation_is_named_by_the_scope():
    assert set(ApiOperation.values) == {
        "issue",
        "issue-batch",
        "stock",
        "mark-issued",
        "check",
        "redeem",
        "release",
    }


@pytest.mark.parametrize("operation", ApiOperation.values)
def test_a_key_calls_only_the_operations_its_scope_names(operation):
    pool = make_pool(launched=True)
    make_codes(pool, ["C1", "C2"])
    others = [op for op in ApiOperation.values if op != operation]

    allowed = scoped([operation])
    refused = scoped(others)

    assert call(refused, operation, pool.slug) == (403, "operation_not_allowed")
    assert call(allowed, operation, pool.slug)[1] != "operation_not_allowed"
    assert Code.objects.filter(status=Code.Status.AVAILABLE).count() >= 1


def test_a_key_without_a_scope_may_do_nothing():
    pool = make_pool(launched=True)
    make_codes(pool, ["C1"])
    _, secret = APIKey.objects.create_key(name="bare")
    bare = client_of(secret)

    for operation in ApiOperation.values:
        assert call(bare, operation, pool.slug) == (403, "operation_not_allowed"), operation


def test_a_key_touches_only_its_campaigns_and_pools_and_learns_nothing_of_others():
    mine, theirs = make_campaign(), make_campaign()
    pool = make_pool(mine, launched=True)
    named = make_pool(theirs, launched=True)
    other = make_pool(theirs, launched=True)
    for p in (pool, named, other):
        make_codes(p, [f"{p.slug}-1"])
    client = scoped(campaigns=[mine], pools=[named])
    later = make_pool(mine, launched=True)  # a campaign's pools, present and future
    make_codes(later, [f"{later.slug}-1"])

    for reachable in (pool, named, later):
        assert call(client, "check", reachable.slug, code=f"{reachable.slug}-1") == (200, None)
    for operation in ApiOperation.values:
        out_of_scope = call(client, operation, other.slug, code=f"{other.slug}-1")
        made_up = call(client, operation, "no-such-pool", code="NOPE")
        assert out_of_scope == made_up == (403, "pool_not_allowed"), operation


def test_a_scope_narrowed_in_the_admin_holds_at_once(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["C1"])
    api_key, secret = make_api_key(name="narrowed")
    client = client_of(secret)
    assert call(client, "check", pool.slug) == (200, None)

    scope = api_key.scope
    scope.operations = ["issue"]
    scope.save()

    assert call(client, "check", pool.slug) == (403, "operation_not_allowed")


def test_idempotency_keys_belong_to_the_api_key_that_used_them():
    pool = make_pool(launched=True)
    make_codes(pool, ["C1", "C2", "C3", "C4"])
    a, b = scoped(), scoped()
    url = f"/api/pools/{pool.slug}/issue"

    first = a.post(url, {"customer": "alice", "idempotency_key": "msg-1"}, format="json").json()
    # Another key with the same idempotency key and customer gets a code of its own.
    second = b.post(url, {"customer": "alice", "idempotency_key": "msg-1"}, format="json").json()
    assert first["code"] != second["code"]
    # Nor can it give the first key's code back.
    release = {"code": first["code"], "pool": pool.slug, "idempotency_key": "msg-1"}
    refused = b.post("/api/codes/release", release, format="json")
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "unknown_code")
    assert a.post("/api/codes/release", release, format="json").status_code == 200

    batch = {"customers": ["bob"], "idempotency_key": "news"}
    by_a = a.post(f"/api/pools/{pool.slug}/issue-batch", batch, format="json").json()
    by_b = b.post(f"/api/pools/{pool.slug}/issue-batch", batch, format="json").json()
    assert by_a["issued"][0]["code"]["code"] != by_b["issued"][0]["code"]["code"]


def test_an_assignments_issues_are_not_reachable_from_the_api():
    pool = make_pool(launched=True)
    make_codes(pool, ["C1", "C2"])
    mailed = code_issue(pool=pool, customer="bob", idempotency_key="assignment:bob")
    client = scoped()

    again = client.post(
        f"/api/pools/{pool.slug}/issue",
        {"customer": "bob", "idempotency_key": "assignment:bob"},
        format="json",
    ).json()
    release = {"code": mailed.code, "pool": pool.slug, "idempotency_key": "assignment:bob"}
    refused = client.post("/api/codes/release", release, format="json")

    assert again["code"] != mailed.code
    assert refused.json()["error"]["code"] == "unknown_code"
    assert Code.objects.get(code=mailed.code).status == Code.Status.ISSUED


def test_keys_made_before_scopes_keep_every_right_and_their_retries():
    """The data migration: every key that existed gets every operation on every pool, and the
    issues it recorded move into its namespace, so that a retry returns the same code."""
    migration = importlib.import_module("pools.migrations.0016_api_key_scopes_data")
    every_pool = importlib.import_module("pools.migrations.0018_api_key_scope_every_pool")
    pool = make_pool(launched=True)
    make_codes(pool, ["C1", "C2"])
    api_key, secret = APIKey.objects.create_key(name="old")
    issued = code_issue(
        pool=pool, customer="c", idempotency_key="msg-1", caller=api_key.prefix
    )  # as the API recorded it before scopes

    from django.apps import apps

    migration.forwards(apps, None)
    every_pool.every_pool_where_none_named(apps, None)

    assert sorted(ApiKeyScope.objects.get(api_key=api_key).operations) == sorted(
        ApiOperation.values
    )
    body = {"customer": "c", "idempotency_key": "msg-1"}
    retry = client_of(secret).post(f"/api/pools/{pool.slug}/issue", body, format="json")
    assert retry.status_code == 200 and retry.json()["code"] == issued.code
    assert CodeIssue.objects.count() == 1


def test_managers_give_a_new_key_its_scope_in_the_admin(manager_client):
    campaign = make_campaign()
    pool = make_pool(campaign, launched=True)
    make_codes(pool, ["C1"])
    form = {
        "name": "checkout",
        "scope-TOTAL_FORMS": "1",
        "scope-INITIAL_FORMS": "0",
        "scope-MIN_NUM_FORMS": "1",
        "scope-MAX_NUM_FORMS": "1",
        "scope-0-operations": ["check", "redeem"],
        "scope-0-campaigns": [str(campaign.pk)],
    }

    empty = manager_client.post(
        reverse("admin:rest_framework_api_key_apikey_add"),
        {**form, "scope-0-operations": []},
    )
    assert "Choose at least one operation" in empty.content.decode()
    assert not APIKey.objects.exists()

    response = manager_client.post(
        reverse("admin:rest_framework_api_key_apikey_add"), form, follow=True
    )
    secret = re.search(r"\b(\w{8}\.\w{32})\b", response.content.decode()).group(1)
    client = client_of(secret)
    assert call(client, "check", pool.slug) == (200, None)
    assert call(client, "issue", pool.slug) == (403, "operation_not_allowed")

    listing = manager_client.get(reverse("admin:rest_framework_api_key_apikey_changelist"))
    assert "Check a code, Redeem a code" in listing.content.decode()
    assert campaign.name in listing.content.decode()


def test_a_key_kept_to_pools_that_are_deleted_reaches_none():
    mine, other = make_campaign(), make_campaign()
    doomed = make_pool(mine)  # a draft: staff may delete it
    pool = make_pool(other, launched=True)
    make_codes(pool, ["C1"])
    by_pool, by_campaign = scoped(pools=[doomed]), scoped(campaigns=[mine])

    doomed.delete()
    mine.delete()
    from django.core.cache import caches

    caches["local"].clear()  # as once the rights' few seconds in memory are over

    for client in (by_pool, by_campaign):
        assert call(client, "stock", pool.slug) == (403, "pool_not_allowed")


def test_the_admin_asks_for_every_pool_or_some(manager_client):
    form = {
        "name": "vague",
        "scope-TOTAL_FORMS": "1",
        "scope-INITIAL_FORMS": "0",
        "scope-0-operations": ["check"],
    }
    url = reverse("admin:rest_framework_api_key_apikey_add")

    assert "name the campaigns or pools" in manager_client.post(url, form).content.decode()
    both = {**form, "scope-0-every_pool": "on", "scope-0-campaigns": [str(make_campaign().pk)]}
    assert "needs no campaigns or pools named" in manager_client.post(url, both).content.decode()
    assert not APIKey.objects.exists()


def test_a_key_that_gave_a_personal_code_back_hears_of_it_no_more():
    pool = make_pool(launched=True, require_issue_before_redeem=True, issued_validity_days=3)
    make_codes(pool, ["P1"])
    issuer = scoped()
    code = issuer.post(
        f"/api/pools/{pool.slug}/issue", {"customer": "c", "idempotency_key": "m"}, format="json"
    ).json()["code"]
    release = {"code": code, "pool": pool.slug, "idempotency_key": "m"}
    assert issuer.post("/api/codes/release", release, format="json").status_code == 200
    scoped().post(
        "/api/codes/mark-issued", {"code": code, "customer": "victim", "pool": pool.slug}, "json"
    )

    asked = call(issuer, "check", pool.slug, code=code)
    made_up = call(issuer, "check", pool.slug, code="NOPE")

    assert asked == made_up == (200, "unknown_code")


def test_a_pool_out_of_scope_spends_no_budget_and_tells_nothing(settings):
    settings.API_FAILED_CHECKS_PER_POOL = 2
    settings.API_RATE_PER_CUSTOMER = "2/min"
    mine, theirs = make_campaign(), make_campaign()
    pool, other = make_pool(mine, launched=True), make_pool(theirs, launched=True)
    make_codes(pool, ["C1"])
    make_codes(other, ["O1"])
    inside, outside = scoped(campaigns=[theirs]), scoped(campaigns=[mine])
    for _ in range(2):
        call(inside, "check", other.slug, code="NOPE", customer="x")  # the pool's budget spent

    for _ in range(3):
        assert call(outside, "check", other.slug, code="O1") == (403, "pool_not_allowed")
    # The customer's own checks were not spent by the calls refused.
    assert call(outside, "check", pool.slug, code="C1") == (200, None)
