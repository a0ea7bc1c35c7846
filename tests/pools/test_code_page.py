"""A code's page and the API's answers say when a code can be issued and until when it can be
redeemed, as issuing and redemption decide it."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import formats, timezone
from rest_framework.test import APIClient

from pools.code_services import code_issue, code_redeem, codes_withdraw
from pools.models import Code
from pools.refusals import CodeRefused, Refusal
from tests.factories import make_api_key, make_codes, make_pool, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


def cell(page: str, name: str) -> str:
    return re.search(rf'<td class="{name}">(.*?)</td>', page, re.S).group(1)


def moment(value) -> str:
    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")


def code_page(client, code: Code) -> str:
    return client.get(reverse("admin:pools_code_change", args=[code.pk])).content.decode()


def personal_pool(days=30):
    return make_pool(require_issue_before_redeem=True, issued_validity_days=days, launched=True)


def test_an_issued_code_of_a_pool_with_a_validity_period_is_valid_until_its_end(manager_client):
    pool = personal_pool()
    make_codes(pool, ["P1"])
    code = code_issue(pool=pool, customer="ann")
    end = code.issued_at + timedelta(days=30)

    page = code_page(manager_client, code)

    assert cell(page, "can-be-redeemed") == (
        f"Until {moment(end)}. That is 30 days after its issue."
    )
    assert cell(page, "can-be-issued") == "No: the code is issued."
    # What the page says is what redemption does.
    assert code.valid_until == end
    assert code.redeem_refusal("ann", at=end) is None
    assert code.redeem_refusal("ann", at=end + timedelta(microseconds=1)) == (
        Refusal.VALIDITY_PERIOD_OVER
    )


def test_available_till_earlier_than_the_validity_period_ends_the_code_first(manager_client):
    pool = personal_pool()
    till = timezone.now() + timedelta(days=3)
    make_codes(pool, ["P2"], available_till=till)

    before_issue = cell(code_page(manager_client, Code.objects.get()), "can-be-redeemed")
    code = code_issue(pool=pool, customer="ann")

    assert before_issue == (
        f"Once issued, by that customer only, for 30 days after the issue. Until {moment(till)}."
    )
    assert cell(code_page(manager_client, code), "can-be-redeemed") == f"Until {moment(till)}."
    assert code.valid_until == till
    assert code.redeem_refusal("ann", at=till + timedelta(seconds=1)) == Refusal.EXPIRED


def test_a_code_past_its_validity_period_says_so_and_is_refused(manager_client):
    pool = personal_pool(days=1)
    make_codes(pool, ["P3"])
    code = code_issue(pool=pool, customer="ann")
    Code.objects.filter(pk=code.pk).update(issued_at=timezone.now() - timedelta(days=2))
    code.refresh_from_db()

    page = code_page(manager_client, code)

    assert cell(page, "can-be-redeemed") == f"No: it was valid until {moment(code.valid_until)}."
    with pytest.raises(CodeRefused) as refused:
        code_redeem(code="P3", customer="ann", pool=pool)
    assert refused.value.reason == Refusal.VALIDITY_PERIOD_OVER


def test_a_withdrawn_code_can_be_neither_issued_nor_redeemed(manager_client):
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["W1"])
    codes_withdraw(pool=pool, codes=["W1"])

    page = code_page(manager_client, code)

    assert cell(page, "can-be-issued") == "No: the code is withdrawn."
    assert cell(page, "can-be-redeemed") == "No: the code is withdrawn."


def test_an_available_code_with_an_issue_window(manager_client):
    pool = make_pool(launched=True)
    start, end = timezone.now() + timedelta(days=1), timezone.now() + timedelta(days=9)
    (code,) = make_codes(pool, ["D1"], issue_start=start, issue_end=end)
    (open_code,) = make_codes(pool, ["D2"])

    assert cell(code_page(manager_client, code), "can-be-issued") == (
        f"From {moment(start)} until {moment(end)}."
    )
    assert cell(code_page(manager_client, open_code), "can-be-issued") == "Any time."
    assert cell(code_page(manager_client, open_code), "can-be-redeemed") == "Any time."


def test_the_api_issue_answer_says_until_when_the_code_is_valid():
    _, key = make_api_key(name="crm")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    personal, plain = personal_pool(), make_pool(launched=True)
    make_codes(personal, ["V1"])
    make_codes(plain, ["V2"])

    issued = post(api, f"/api/pools/{personal.slug}/issue", {"customer": "c1"}).json()
    again = post(api, f"/api/pools/{plain.slug}/issue", {"customer": "c1"}).json()

    code = Code.objects.get(code="V1")
    assert issued["valid_until"] == (code.issued_at + timedelta(days=30)).isoformat().replace(
        "+00:00", "Z"
    )
    assert again["valid_until"] is None
    check = post(api, "/api/codes/check", {"code": "V1", "customer": "c1", "pool": personal.slug})
    assert check.json()["code"]["valid_until"] == issued["valid_until"]
