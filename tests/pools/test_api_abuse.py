"""The API against abuse: guessing is bounded, checks leak nothing, every answer is
JSON with a stable code, and a Redis outage degrades instead of breaking."""

import logging
import os
import shutil
import subprocess
import time

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from pools.api_base import API_MAX_BODY_BYTES, api_exception_handler
from pools.models import Code
from pools.refusals import Refusal
from pools.shared_cache import shared_reset
from tests.factories import make_api_key, make_codes, make_pool, post
from tests.worker import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_limits(fresh_rate_limits):
    yield
    shared_reset()


def client_with_key(name="crm"):
    _, key = make_api_key(name=name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def api():
    return client_with_key()


def check(api, pool, code, customer):
    return post(api, "/api/codes/check", {"code": code, "customer": customer, "pool": pool.slug})


# Guessing is bounded


def test_a_changed_customer_id_does_not_raise_the_guessing_budget(api, settings):
    settings.API_FAILED_CHECKS_PER_KEY = 5
    pool = make_pool(launched=True)
    make_codes(pool, ["REAL"])

    answers = [check(api, pool, f"GUESS{i}", f"customer-{i}") for i in range(6)]

    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].json()["error"]["code"] == "throttled"
    assert answers[-1].json()["error"]["retry_after"] > 0
    assert int(answers[-1]["Retry-After"]) >= 0  # as the schema documents
    # A spent budget refuses hits too: a guesser cannot tell them from misses any more.
    assert check(api, pool, "REAL", "customer-new").status_code == 429
    assert (
        post(
            api, "/api/codes/redeem", {"code": "REAL", "customer": "x", "pool": pool.slug}
        ).status_code
        == 429
    )
    assert (
        post(
            api, "/api/codes/mark-issued", {"code": "REAL", "customer": "x", "pool": pool.slug}
        ).status_code
        == 429
    )
    # Another key has its own budget.
    assert check(client_with_key("shop"), pool, "REAL", "c").json()["valid"] is True


def test_hits_do_not_spend_the_budget(api, settings):
    settings.API_FAILED_CHECKS_PER_KEY = 2
    pool = make_pool(launched=True)
    make_codes(pool, ["REAL"])

    assert all(check(api, pool, "REAL", f"c{i}").json()["valid"] for i in range(5))


def test_many_keys_share_a_pools_budget(settings):
    settings.API_FAILED_CHECKS_PER_POOL = 3
    pool, other = make_pool(launched=True), make_pool(launched=True)

    statuses = [check(client_with_key(f"k{i}"), pool, "GUESS", "c").status_code for i in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert check(client_with_key("k9"), other, "GUESS", "c").status_code == 200


def test_customer_ids_differing_in_whitespace_are_one_customer(api, settings):
    settings.API_RATE_PER_CUSTOMER = "2/min"
    pool = make_pool(launched=True)

    statuses = [check(api, pool, "X", customer).status_code for customer in ("c1", " c1", "c1 ")]

    assert statuses == [200, 200, 429]


def test_a_customers_budget_is_one_whichever_key_asks(settings):
    settings.API_RATE_PER_CUSTOMER = "2/min"
    pool = make_pool(launched=True)
    keys = [client_with_key(f"shop-{i}") for i in range(3)]

    statuses = [check(client, pool, "X", "c1").status_code for client in keys]

    assert statuses == [200, 200, 429]
    assert check(keys[2], pool, "X", "c2").status_code == 200


def test_unknown_pools_count_as_failed_guesses(api, settings):
    settings.API_FAILED_CHECKS_PER_KEY = 2
    pool = make_pool(launched=True)
    body = {"code": "X", "customer": "c"}

    for slug in ("nope-1", "nope-2"):
        answer = post(api, "/api/codes/check", {**body, "pool": slug})
        assert answer.json()["error"]["code"] == "unknown_code"
    assert check(api, pool, "X", "c").status_code == 429


# A check answers only what the caller may know


def test_pool_is_required_to_check_redeem_and_mark(api):
    for path in ("check", "redeem", "mark-issued"):
        answer = post(api, f"/api/codes/{path}", {"code": "X", "customer": "c"})
        assert answer.status_code == 400
        assert "pool" in answer.json()["error"]["fields"]


def test_check_and_redeem_never_name_another_customer(api):
    pool = make_pool(launched=True)
    make_codes(pool, ["SHARED"])
    post(api, f"/api/pools/{pool.slug}/issue", {"customer": "alice"})

    checked = check(api, pool, "SHARED", "bob")
    body = {"code": "SHARED", "customer": "bob", "pool": pool.slug}
    redeemed = post(api, "/api/codes/redeem", body)

    assert checked.json()["valid"] is True and checked.json()["code"]["customer"] is None
    assert redeemed.status_code == 200
    assert redeemed.json()["code"]["customer"] is None and "alice" not in redeemed.text
    assert "alice" not in checked.text


def test_not_yours_answers_like_unknown_where_codes_are_personal(api):
    pool = make_pool(launched=True, require_issue_before_redeem=True, issued_validity_days=7)
    make_codes(pool, ["MINE", "FREE", "USED"])
    issued = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "alice"}).json()["code"]
    Code.objects.filter(code="USED").update(status=Code.Status.REDEEMED, issued_to="carol")
    stranger = client_with_key("stranger")

    made_up = check(stranger, pool, "MADE-UP", "bob").json()
    for code in (issued, "FREE", "USED"):
        assert check(stranger, pool, code, "bob").json() == made_up
    redeem = {"code": issued, "customer": "bob", "pool": pool.slug}
    made_up_redeem = post(stranger, "/api/codes/redeem", {**redeem, "code": "MADE-UP"})
    assert post(stranger, "/api/codes/redeem", redeem).json() == made_up_redeem.json()
    assert made_up_redeem.status_code == 404
    assert made_up["error"]["code"] == Refusal.UNKNOWN_CODE

    # The caller that issued the code still learns why it fails; its holder can use it.
    assert check(api, pool, issued, "bob").json()["error"]["code"] == "not_issued_to_customer"
    assert check(stranger, pool, issued, "alice").json()["valid"] is True


def test_a_made_up_code_is_unknown_whatever_the_pools_state(api, settings):
    settings.API_FAILED_CHECKS_PER_KEY = 1
    pool = make_pool()  # a draft
    make_codes(pool, ["REAL"])

    assert check(api, pool, "REAL", "c").json()["error"]["code"] == "pool_not_active"
    assert check(api, pool, "NOPE", "c").json()["error"]["code"] == "unknown_code"
    # The miss spent the budget: the pool's state is no way around it.
    assert check(api, pool, "REAL", "c").status_code == 429


# Every answer is JSON with a stable code


ENDPOINTS = ["/api/codes/check", "/api/codes/redeem", "/api/codes/mark-issued"]


def raw(api, url, body: bytes, content_type="application/json"):
    return api.generic("POST", url, body, content_type=content_type)


def assert_json_error(answer, status, code):
    assert answer.status_code == status, answer.content[:200]
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == code


@pytest.mark.parametrize("url", [*ENDPOINTS, "/api/pools/some-pool/issue"])
def test_deeply_nested_json_answers_parse_error(api, url):
    assert_json_error(raw(api, url, b"[" * 10_000 + b"]" * 10_000), 400, "parse_error")
    nested_field = b'{"customer": ' + b"[" * 20 + b"]" * 20 + b"}"
    assert_json_error(raw(api, url, nested_field), 400, "parse_error")


@pytest.mark.parametrize("url", ENDPOINTS)
def test_a_lone_surrogate_answers_invalid(api, url):
    pool = make_pool(launched=True)
    body = b'{"code": "A", "customer": "\\ud800", "pool": "%s"}' % pool.slug.encode()

    answer = raw(api, url, body)

    assert_json_error(answer, 400, "invalid")
    assert "customer" in answer.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"code": "\xff\xfe"}', "application/json"),
        (b'{"code": "A"}', "application/json; charset=no-such-charset"),
        (b'{"code": NaN}', "application/json"),
        (b'{"code": ' + b"9" * 5000 + b"}", "application/json"),
    ],
)
def test_unreadable_bodies_answer_parse_error(api, body, content_type):
    assert_json_error(raw(api, "/api/codes/check", body, content_type), 400, "parse_error")


def test_numbers_are_not_strings(api):
    pool = make_pool(launched=True)

    answer = post(api, "/api/codes/check", {"code": 1, "customer": 2, "pool": pool.slug})

    assert_json_error(answer, 400, "invalid")
    assert set(answer.json()["error"]["fields"]) == {"code", "customer"}


def test_a_body_over_the_limit_answers_413_in_json(api, settings):
    over_api_limit = b'{"code": "' + b"A" * API_MAX_BODY_BYTES + b'"}'
    assert_json_error(raw(api, "/api/codes/check", over_api_limit), 413, "payload_too_large")

    # Over Django's own limit too, which used to answer with an HTML page.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    over_both = b'{"code": "' + b"A" * (2 * API_MAX_BODY_BYTES) + b'"}'
    assert_json_error(raw(api, "/api/codes/redeem", over_both), 413, "payload_too_large")


def test_a_disallowed_host_answers_json(api):
    answer = api.post("/api/codes/check", {}, format="json", HTTP_HOST="evil.example")

    assert_json_error(answer, 400, "bad_request")


def test_a_validation_error_without_a_field_answers_invalid():
    response = api_exception_handler(ValidationError("Not like this."), {})

    assert response.status_code == 400
    assert response.data["error"]["fields"] == {"non_field_errors": ["Not like this."]}


# Redis down degrades, never breaks


def point_cache_at(settings, url):
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        },
    }


def test_issue_and_check_go_on_without_redis(api, settings, caplog):
    point_cache_at(settings, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    settings.API_RATE_PER_CUSTOMER = "3/min"
    pool = make_pool(launched=True)
    make_codes(pool, ["A1", "A2"])

    with caplog.at_level(logging.WARNING, logger="pools.shared_cache"):
        issued = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c"})
        again = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "d"})
        checks = [check(api, pool, issued.json()["code"], "c") for _ in range(4)]

    assert issued.status_code == again.status_code == 200
    assert [c.status_code for c in checks] == [200, 200, 200, 429]  # limited in memory
    assert checks[0].json()["valid"] is True
    assert "Shared cache unreachable" in caplog.text


def test_a_redis_that_dies_mid_run_degrades(api, settings, tmp_path):
    if not shutil.which("redis-server"):
        if os.environ.get("CI"):
            pytest.fail("no redis-server: .ci/run uses the local one")
        pytest.skip("no redis-server to start and kill")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)
        point_cache_at(settings, f"redis://127.0.0.1:{port}/0")
        pool = make_pool(launched=True)
        make_codes(pool, ["B1", "B2"])

        before = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "c"})
        assert before.status_code == 200 and client.dbsize() > 0  # pool and counters there
        server.kill()
        server.wait()
        after = post(api, f"/api/pools/{pool.slug}/issue", {"customer": "d"})
        checked = check(api, pool, after.json()["code"], "d")
    finally:
        server.kill()
        server.wait()

    assert after.status_code == 200 and checked.json()["valid"] is True


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"HTTP_AUTHORIZATION": "Api-Key \u00fc\u00ff.\u00e9"}, 403, "permission_denied"),
        ({"HTTP_AUTHORIZATION": "Api-Key " + "x" * 10_000}, 403, "permission_denied"),
        ({"HTTP_AUTHORIZATION": "Bearer nothing"}, 403, "permission_denied"),
        ({"HTTP_ACCEPT": "text/html"}, 406, "not_acceptable"),
        ({"CONTENT_LENGTH": "not-a-number"}, 400, "invalid"),
    ],
)
def test_odd_headers_answer_json(api, headers, status, code):
    if "HTTP_AUTHORIZATION" in headers:
        api.credentials()
    answer = api.post("/api/codes/check", {"code": "A"}, format="json", **headers)

    assert_json_error(answer, status, code)


def test_marks_spend_the_failure_budget_but_not_the_customers(api, settings):
    settings.API_RATE_PER_CUSTOMER = "2/min"
    settings.API_FAILED_CHECKS_PER_KEY = 2
    pool = make_pool(launched=True)
    make_codes(pool, [f"PRINTED{i}" for i in range(4)])

    def mark(code):
        body = {"code": code, "customer": "flyer", "pool": pool.slug}
        return post(api, "/api/codes/mark-issued", body).status_code

    assert [mark(f"PRINTED{i}") for i in range(4)] == [200] * 4  # one customer, many codes
    assert [mark("GUESS1"), mark("GUESS2"), mark("PRINTED0")] == [404, 404, 429]
