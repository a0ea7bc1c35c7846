"""The pools screens' own words: plain English labels, counts that agree with their nouns (in
English and in Russian), lists titled by what they list."""

import pytest
from django.urls import reverse
from django.utils import translation

from pools.admin.parts import withdrawal_told
from pools.models import Withdrawal
from tests.factories import alerting_pool, make_codes, make_pool

pytestmark = pytest.mark.django_db


def done(pool, withdrawn, requested):
    return Withdrawal(
        pool=pool,
        status=Withdrawal.Status.COMPLETED,
        codes_withdrawn=withdrawn,
        codes_requested=requested,
    )


def test_a_withdrawal_counts_its_codes_in_the_singular_when_there_is_one():
    pool = make_pool(slug="spring")

    assert withdrawal_told(done(pool, 1, 1)) == "Withdrew 1 of 1 code from “spring”."
    assert withdrawal_told(done(pool, 2, 1502)) == "Withdrew 2 of 1,502 codes from “spring”."


def test_a_withdrawal_counts_its_codes_in_russian_plural_forms():
    pool = make_pool(slug="spring")

    with translation.override("ru"):
        assert withdrawal_told(done(pool, 1, 1)) == "Отозвано 1 из 1 кода пула «spring»."
        assert withdrawal_told(done(pool, 1, 21)) == "Отозвано 1 из 21 кода пула «spring»."
        assert withdrawal_told(done(pool, 3, 3)) == "Отозвано 3 из 3 кодов пула «spring»."
        # Thousands as a Russian reader writes them: a (non-breaking) space, not a comma.
        assert withdrawal_told(done(pool, 5, 1502)) == "Отозвано 5 из 1\xa0502 кодов пула «spring»."


def test_withdrawing_one_code_from_its_page_says_code_not_codes(manager_client):
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["ONLY1"])

    response = manager_client.post(
        reverse("admin:pools_code_withdraw", args=[code.pk]), {"reason": ""}, follow=True
    )

    page = response.content.decode()
    assert f"Withdrew 1 of 1 code from “{pool.slug}”." in page
    assert "1 codes" not in page


def test_the_home_page_counts_a_last_code_in_the_singular(manager_client):
    pool = alerting_pool(threshold=3, codes=1)

    page = manager_client.get(reverse("admin:index")).content.decode()

    assert f">{pool.slug}</a> ({pool.campaign}): 1 code left, alert below 3" in page


def test_the_pool_form_speaks_plain_english(manager_client):
    page = manager_client.get(reverse("admin:pools_pool_add")).content.decode()

    for label in (
        "Redeem only by the customer the code was issued to",
        "Validity period after issue (days)",
        "Codes can be used more than once",
        "Send low-stock alerts",
        "Alert when fewer codes than this are left",
    ):
        assert f"{label}</label>" in page or f"{label}:</label>" in page, label
    for old in ("Check that code was issued", "code amount", "Code amount", "multiple times"):
        assert old not in page
    # The form script's sentences come from the page, in the reader's language.
    assert 'data-issue-check-off="Off while “Codes can be used more than once” is on' in page


def test_the_pool_form_script_holds_no_sentence():
    with open("static/pools/pool_form.js", encoding="utf-8") as script:
        text = script.read()

    assert "exclude each other" not in text
    assert "Check that code was issued" not in text


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("admin:pools_code_changelist", "Codes"),
        ("admin:pools_withdrawal_changelist", "Withdrawals"),
        ("admin:pools_codeexport_changelist", "Exports"),
        ("admin:pools_pool_changelist", "Pools"),
        ("admin:pools_campaign_changelist", "Campaigns"),
    ],
)
def test_a_list_is_titled_by_what_it_lists(manager_client, url, title):
    page = manager_client.get(reverse(url)).content.decode()

    assert f"<h1>{title}</h1>" in page
    assert "Select " not in page.split("<h1>", 1)[1].split("</h1>", 1)[0]


def test_a_read_only_list_in_russian_is_titled_by_what_it_lists(manager_client):
    manager_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"

    page = manager_client.get(reverse("admin:pools_code_changelist")).content.decode()

    assert "<h1>Коды</h1>" in page


def test_adding_a_campaign_reads_as_one_russian_phrase(manager_client):
    """Not Django's "Add %s" ("Добавить кампания"): the noun changes case after the verb."""
    manager_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"

    listed = manager_client.get(reverse("admin:pools_campaign_changelist")).content.decode()
    added = manager_client.get(reverse("admin:pools_campaign_add")).content.decode()

    assert "Добавить кампанию" in listed and "Добавить кампания" not in listed
    assert "<h1>Добавить кампанию</h1>" in added and "Добавить кампания" not in added
