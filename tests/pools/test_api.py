from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from pools.api import ApiKeyThrottle
from pools.models import Code, Redemption
from pools.refusals import Refusal
from tests.factories import make_api_key, make_codes, make_pool, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


@pytest.fixture
def api_key():
    _, key = make_api_key(name="crm")
    return key


@pytest.fixture
def api(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")
    return client


def test_issue_then_redeem_over_http(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["HTTP1", "HTTP2"])

    issued = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c1", "idempotency_key": "m1"})
    again = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c1", "idempotency_key": "m1"})

    assert issued.status_code == 200
    assert issued.json()["code"] == again.json()["code"]
    assert issued.json()["customer"] == "c1" and issued.json()["pool"] == pool.slug
    assert api.get(f"/api/pools/{pool.slug}/stock").json() == {"pool": pool.slug, "stock": 1}

    code = issued.json()["code"]
    check = post(api, "/api/codes/check", {"code": code, "customer": "c1", "pool": pool.slug})
    assert check.json()["valid"] is True
    order = {"code": code, "customer": "c1", "pool": pool.slug, "order_reference": "o1"}
    redeemed = post(api, "/api/codes/redeem", order)
    assert redeemed.status_code == 200 and redeemed.json()["code"]["status"] == "redeemed"
    repeat = post(api, "/api/codes/redeem", order)
    assert repeat.status_code == 200 and Redemption.objects.count() == 1

    twice = post(api, "/api/codes/redeem", {"code": code, "customer": "c1", "pool": pool.slug})
    assert twice.status_code == 409
    assert twice.json() == {
        "error": {"code": "already_redeemed", "message": Refusal.ALREADY_REDEEMED.label}
    }


def test_wrong_code_and_code_of_another_pool_answer_alike(api):
    mine, other = make_pool(launched=True), make_pool(launched=True)
    make_codes(other, ["THEIRS"])

    wrong = post(api, "/api/codes/redeem", {"code": "NOPE", "customer": "c", "pool": mine.slug})
    foreign = post(api, "/api/codes/redeem", {"code": "THEIRS", "customer": "c", "pool": mine.slug})
    unknown_pool = post(api, "/api/codes/redeem", {"code": "THEIRS", "customer": "c", "pool": "x"})

    assert wrong.status_code == foreign.status_code == unknown_pool.status_code == 404
    assert wrong.json() == foreign.json() == unknown_pool.json()
    check = post(api, "/api/codes/check", {"code": "NOPE", "customer": "c", "pool": mine.slug})
    assert check.json()["valid"] is False and check.json()["error"]["code"] == "unknown_code"


def test_mark_issued_over_http(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["PRINT1"])

    response = post(
        api, "/api/codes/mark-issued", {"code": "PRINT1", "customer": "alice", "pool": pool.slug}
    )

    assert response.status_code == 200
    assert Code.objects.get().issued_to == "alice"


def test_errors_are_json_with_a_stable_code(api):
    pool = make_pool()

    missing = post(api, f"/api/pools/{pool.slug}/issue", {})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "invalid"
    assert "customer" in missing.json()["error"]["fields"]
    not_active = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c"})
    assert (not_active.status_code, not_active.json()["error"]["code"]) == (409, "pool_not_active")
    no_pool = post(api, "/api/pools/nope/issue", {"customer": "c"})
    assert (no_pool.status_code, no_pool.json()["error"]["code"]) == (404, "unknown_pool")
    nowhere = api.get("/api/no/such/thing")
    assert nowhere.status_code == 404 and nowhere["Content-Type"] == "application/json"
    assert nowhere.json()["error"]["code"] == "not_found"
    not_json = api.post("/api/codes/check", "code=A", content_type="text/plain")
    assert not_json.status_code == 415 and "error" in not_json.json()


def test_api_key_is_required_and_revocation_takes_effect(api, api_key):
    pool = make_pool(launched=True)
    url = f"/api/pools/{pool.slug}/stock"

    anonymous = APIClient().get(url)
    assert anonymous.status_code == 403
    assert anonymous.json()["error"]["code"] == "permission_denied"
    assert api.get(url).status_code == 200

    stored = APIKey.objects.get_from_key(api_key)
    stored.revoked = True
    stored.save()  # as the admin does

    assert api.get(url).status_code == 403


def test_a_key_with_a_known_prefix_and_a_wrong_secret_is_refused(api, api_key):
    pool = make_pool(launched=True)
    url = f"/api/pools/{pool.slug}/stock"
    prefix, _, secret = api_key.partition(".")
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Api-Key {prefix}.{secret[::-1]}")

    assert forged.get(url).status_code == 403
    assert api.get(url).status_code == 200  # the key is now trusted for a few seconds
    assert forged.get(url).status_code == 403
    assert api.get(url).status_code == 200


def test_an_api_key_past_its_expiry_date_is_refused():
    pool = make_pool(launched=True)
    make_codes(pool, ["EXP1"])
    url = f"/api/pools/{pool.slug}/issue"
    now = timezone.now()
    answers = {}
    for name, expiry in (
        ("expired", now - timedelta(minutes=1)),
        ("valid", now + timedelta(days=1)),
    ):
        _, secret = make_api_key(name=name, expiry_date=expiry)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
        answers[name] = client.post(url, {"customer": "c1"}, format="json")

    assert answers["expired"].status_code == 403
    assert answers["expired"].json()["error"]["code"] == "permission_denied"
    assert answers["valid"].status_code == 200
    assert Code.objects.get(code="EXP1").issued_to == "c1"


def test_check_and_redeem_are_rate_limited_per_customer(api, settings):
    settings.API_RATE_PER_CUSTOMER = "3/min"
    pool = make_pool(launched=True)

    def attempt(path, code, customer):
        return post(api, path, {"code": code, "customer": customer, "pool": pool.slug})

    statuses = [attempt("/api/codes/check", f"GUESS{i}", "mallory").status_code for i in range(4)]
    redeem = attempt("/api/codes/redeem", "GUESS", "mallory")
    other = attempt("/api/codes/check", "GUESS", "someone-else")

    assert statuses == [200, 200, 200, 429]
    assert redeem.status_code == 429
    assert redeem.json()["error"]["code"] == "throttled"
    assert redeem.json()["error"]["retry_after"] > 0
    assert other.status_code == 200


def test_checks_are_rate_limited_per_api_key(api, monkeypatch):
    monkeypatch.setattr(ApiKeyThrottle, "THROTTLE_RATES", {"api_key": "2/min"})
    pool = make_pool(launched=True)
    _, other_key = make_api_key(name="other")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {other_key}")

    def check(client, customer):
        body = {"code": "X", "customer": customer, "pool": pool.slug}
        return post(client, "/api/codes/check", body).status_code

    assert [check(api, f"c{i}") for i in range(3)] == [200, 200, 429]
    assert check(other, "c9") == 200


def test_openapi_description_is_served(client):
    response = client.get("/api/schema")

    assert response.status_code == 200
    assert b"/api/codes/redeem" in response.content


def test_pause_answers_at_once_though_the_pool_is_cached(api):
    from pools.services import pool_end, pool_pause, pool_resume

    pool = make_pool(launched=True)
    make_codes(pool, ["LIVE1", "LIVE2", "LIVE3"])
    issued = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c1"}).json()["code"]

    pool_pause(pool=pool)  # the API process cached the pool as active a moment ago

    paused = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c2"})
    assert paused.status_code == 409
    assert paused.json()["error"]["code"] == Refusal.POOL_PAUSED
    named = {"code": issued, "customer": "c1", "pool": pool.slug}
    check = post(api, "/api/codes/check", named).json()
    assert (check["valid"], check["error"]["code"]) == (False, "pool_paused")
    redeem = post(api, "/api/codes/redeem", named)
    assert (redeem.status_code, redeem.json()["error"]["code"]) == (409, "pool_paused")

    pool_resume(pool=pool)
    assert post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c2"}).status_code == 200

    pool_end(pool=pool)
    ended = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c3"})
    assert (ended.status_code, ended.json()["error"]["code"]) == (410, "pool_ended")
    assert post(api, "/api/codes/redeem", named).status_code == 200


def test_withdrawn_code_is_refused_over_http(api):
    from pools.code_services import codes_withdraw

    pool = make_pool(launched=True)
    make_codes(pool, ["LEAKED"])
    codes_withdraw(pool=pool, codes=["LEAKED"])

    leaked = {"code": "LEAKED", "customer": "c1", "pool": pool.slug}
    check = post(api, "/api/codes/check", leaked).json()
    redeem = post(api, "/api/codes/redeem", leaked)
    marked = post(api, "/api/codes/mark-issued", leaked)

    assert check["error"]["code"] == "withdrawn"
    assert (redeem.status_code, redeem.json()["error"]["code"]) == (410, "withdrawn")
    assert marked.status_code == 410
    assert api.get(f"/api/pools/{pool.slug}/stock").json()["stock"] == 0
