"""No endpoint that takes a code tells a made-up code from one the key may not see.

Codes a key may not see: codes of pools outside its scope; personal codes (issue before
redemption) handed to someone else by another key; for a release, any code the key did not
issue. Whatever the pool's state and processing, such a code answers as a made-up one does,
and both spend the guessing budget alike.
"""

import itertools

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from pools.code_services import code_issue
from pools.guessing import _failure_keys
from pools.services import pool_end, pool_launch, pool_pause
from pools.shared_cache import shared_get_many, shared_reset
from tests.factories import make_api_key, make_campaign, make_codes, make_pool

pytestmark = pytest.mark.django_db

ENDPOINTS = ["check", "redeem", "mark-issued", "release"]
STATES = ["draft", "active", "paused", "ended", "ended-stopped"]
_serial = itertools.count()


def _pool(campaign, state: str, processing: str, personal: bool):
    rules = {"require_issue_before_redeem": True, "issued_validity_days": 3} if personal else {}
    slug = f"{campaign.pk}-{state}-{processing}-{'personal' if personal else 'bearer'}"
    pool = make_pool(campaign, slug=slug, processing=processing, **rules)
    codes = [f"{slug}-{kind}" for kind in ("held", "free", "mine")]
    make_codes(pool, codes)
    return pool


@pytest.fixture
def world(settings):
    """Pools in every state and processing, bearer and personal, in and out of the key's
    scope; in each, a code another key issued to "owner" while the pool was active."""
    from django.core.cache import cache, caches

    cache.clear()
    caches["local"].clear()
    shared_reset()
    settings.API_RATE_PER_CUSTOMER = "1000000/min"
    settings.API_FAILED_CHECKS_PER_KEY = settings.API_FAILED_CHECKS_PER_POOL = 1_000_000
    mine, theirs = make_campaign(), make_campaign()
    pools = {}
    for campaign, scope in ((mine, "in"), (theirs, "out")):
        for state in STATES:
            for processing in ("internal", "external"):
                for personal in (False, True):
                    pool = _pool(campaign, state, processing, personal)
                    held = f"{pool.slug}-free"  # in a draft, a code nobody holds
                    if state != "draft":
                        pool_launch(pool=pool)
                        held = code_issue(pool=pool, customer="owner", caller="another-key").code
                    if state == "paused":
                        pool_pause(pool=pool)
                    elif state.startswith("ended"):
                        pool_end(pool=pool, stop_redemptions=state == "ended-stopped")
                    visible = next(c for c in pool_codes(pool) if c != held)
                    pools[(scope, state, processing, personal)] = (pool.slug, held, visible)
    _, secret = make_api_key(name="probe", campaigns=[mine])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client, secret.partition(".")[0], pools


def pool_codes(pool) -> list[str]:
    from pools.models import Code

    return sorted(Code.objects.filter(pool=pool).values_list("code", flat=True))


def _hidden(endpoint: str, scope: str, state: str, personal: bool) -> bool:
    """Return True if the pool's held code is one this key may not see through `endpoint`."""
    if scope == "out" or endpoint == "release":
        return True
    # Marking is how a personal code becomes someone's: a code nobody holds (in a draft) can
    # be named, and the draft is told.
    return personal and not (endpoint == "mark-issued" and state == "draft")


def _answer(client, endpoint: str, pool_slug: str, code: str, customer: str):
    body = {"code": code, "customer": customer, "pool": pool_slug}
    if endpoint == "release":
        body = {"code": code, "pool": pool_slug, "idempotency_key": "k-" + customer}
    answer = client.post(f"/api/codes/{endpoint}", body, format="json")
    assert answer.status_code < 500, answer.content[:300]
    return answer.status_code, answer.json()


def _failures(prefix: str, pool_slug: str) -> tuple[int, int]:
    keys = _failure_keys(prefix, pool_slug)
    counts = shared_get_many(list(keys))
    return tuple(counts.get(key, 0) for key in keys)


CALLS = st.lists(
    st.tuples(
        st.sampled_from(ENDPOINTS),
        st.sampled_from(["in", "out"]),
        st.sampled_from(STATES),
        st.sampled_from(["internal", "external"]),
        st.booleans(),
        st.sampled_from(["owner", "bob", "carol"]),
        st.booleans(),  # also spend a call on a code the key may see, in between
    ),
    min_size=1,
    max_size=8,
)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=CALLS)
def test_made_up_codes_and_codes_out_of_sight_answer_alike(world, calls):
    client, prefix, pools = world
    for endpoint, scope, state, processing, personal, customer, visible_too in calls:
        slug, held, visible = pools[(scope, state, processing, personal)]
        if visible_too and scope == "in":
            # A call on a code the key may see: whatever it answers, it changes nothing of
            # what the others hide.
            _answer(client, endpoint, slug, visible, customer)
        if not _hidden(endpoint, scope, state, personal):
            continue
        if customer == "owner" and endpoint != "release" and state != "draft":
            continue  # the held code is the owner's to see

        before = _failures(prefix, slug)
        out_of_sight = _answer(client, endpoint, slug, held, customer)
        between = _failures(prefix, slug)
        made_up = _answer(client, endpoint, slug, f"MADE-UP-{next(_serial)}", customer)
        after = _failures(prefix, slug)

        assert out_of_sight == made_up, (endpoint, scope, state, processing, personal)
        spent = [b - a for a, b in zip(before, between, strict=True)]
        assert spent == [b - a for a, b in zip(between, after, strict=True)]
        if scope == "in":
            assert made_up[0] in (200, 404) and spent == [1, 1]
        else:
            assert made_up[0] == 403 and made_up[1]["error"]["code"] == "pool_not_allowed"
