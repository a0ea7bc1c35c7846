"""The pools screens in Russian: a manager whose browser asks for Russian reads no English on the
pool, code, campaign, withdrawal and export pages (only the product's fixed names: code values,
pool IDs, file column names such as Available-till, reason codes, CSV and the like)."""

import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from pools.admin import campaign_page, pool_actions, pool_page
from pools.admin import pools as pools_screens
from pools.code_services import code_issue, code_redeem, codes_withdraw
from pools.export_services import code_export_start
from tests.factories import make_campaign, make_codes, make_pool

# Names that stay as they are in every language: formats, the API's reason codes, the file
# template's column names, the message template's syntax.
KEPT = {
    *("CSV", "XLSX", "API", "HTTP", "UTC", "ID", "PARAMETER", "promo", "promo.PARAMETER"),
    *("withdrawn", "pool_paused", "check", "redeem", "SPRING_SALE", "spring-sale"),
    *("issue-start", "issue-end", "available-from", "available-till"),
    *("Issue-start", "Issue-end", "Available-from", "Available-till"),
}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]|[A-Za-z]")


def english_words(page: str, *, data: set[str]) -> list[str]:
    """Return the Latin words of a page's content (its header and sidebar left out) that are
    neither data nor names kept in every language."""
    content = page.split('<div id="content"', 1)[-1].split(">", 1)[-1]
    content = content.split('<div id="footer"', 1)[0]
    content = re.sub(r"<(script|style)\b.*?</\1>", " ", content, flags=re.S)
    # Attributes a reader sees (titles, labels, button texts, the form script's sentences).
    shown = re.findall(r'\b(?:title|aria-label)="([^"]*)"', content)
    for texts in re.findall(r'<div id="pool-form-texts"[^>]*>', content):
        shown += re.findall(r'data-[\w-]+="([^"]*)"', texts)
    shown += re.findall(r'<input[^>]*type="submit"[^>]*value="([^"]*)"', content)
    text = re.sub(r"<[^>]+>", " ", content)
    words = LATIN_WORD.findall(html.unescape(" ".join([text, *shown])))
    return sorted({w for w in words if w not in KEPT and w not in data and not w.isupper()})


@pytest.fixture
def russian(manager_client, monkeypatch):
    # Only the pools app's own words: the parts other apps add to these pages (an import's
    # buttons, the alert subscriptions) and the launch summary's facts are theirs to check.
    for registry in (pool_page, campaign_page):
        for kind in ("inlines", "sections", "object_tools"):
            monkeypatch.setattr(registry, kind, [])
    history = [{"at": timezone.now(), "what": "Запущен", "who": None, "why": ""}]
    monkeypatch.setattr(pools_screens, "pool_history", lambda pool: history)
    monkeypatch.setattr(
        pool_actions, "launch_summary", lambda pool: {"facts": [], "warnings": [], "blockers": {}}
    )
    manager_client.defaults["HTTP_ACCEPT_LANGUAGE"] = "ru"
    return manager_client


@pytest.fixture
def world(manager, settings):
    settings.LANGUAGE_CODE = "en"
    campaign = make_campaign("Весенняя распродажа")
    pool = make_pool(
        campaign,
        launched=True,
        description="Скидка десять процентов",
        notify_below_enabled=True,
        notify_below=50,
    )
    draft = make_pool(campaign, description="Черновик")
    make_codes(pool, ["AAA111", "BBB222", "CCC333", "DDD444"])
    issued = code_issue(pool=pool, customer="c1")
    code_redeem(code=issued.code, customer="c1", order_reference="o1")
    code_issue(pool=pool, customer="c2")
    withdrawal = codes_withdraw(pool=pool, codes=["DDD444", "NOPE99"], user=manager, reason="утёк")
    export = code_export_start(filters={"pool": pool.pk}, file_format="csv", user=manager)
    data = {
        pool.slug,
        draft.slug,
        f"promo.{pool.template_parameter}",
        f"promo.{draft.template_parameter}",
        manager.username,
        "AAA111",
        "BBB222",
        "CCC333",
        "DDD444",
        "NOPE99",
        "c1",
        "c2",
        "o1",
        export.file_name,
        *export.file_name.replace(".", "-").split("-"),
        *pool.slug.split("-"),
        *draft.slug.split("-"),
    }
    return {
        "pool": pool,
        "draft": draft,
        "campaign": campaign,
        "code": pool.codes.get(code=issued.code),
        "withdrawal": withdrawal,
        "export": export,
        "data": data,
    }


PAGES = {
    "pool list": lambda w: reverse("admin:pools_pool_changelist"),
    "pool add": lambda w: f"{reverse('admin:pools_pool_add')}?campaign={w['campaign'].pk}",
    "pool page": lambda w: reverse("admin:pools_pool_change", args=[w["pool"].pk]),
    "draft pool page": lambda w: reverse("admin:pools_pool_change", args=[w["draft"].pk]),
    "launch": lambda w: f"{reverse('admin:pools_pool_launch')}?ids={w['draft'].pk}",
    "pause": lambda w: reverse("admin:pools_pool_pause", args=[w["pool"].pk]),
    "end": lambda w: reverse("admin:pools_pool_end", args=[w["pool"].pk]),
    "withdraw": lambda w: reverse("admin:pools_pool_withdraw", args=[w["pool"].pk]),
    "message preview": lambda w: (
        f"{reverse('admin:pools_pool_message_preview')}?text=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+"
        f"%7B%7B+promo.{w['pool'].template_parameter}+%7D%7D"
    ),
    "code list": lambda w: (
        f"{reverse('admin:pools_code_changelist')}?pool__id__exact={w['pool'].pk}"
    ),
    "code page": lambda w: reverse("admin:pools_code_change", args=[w["code"].pk]),
    "campaign list": lambda w: reverse("admin:pools_campaign_changelist"),
    "campaign page": lambda w: reverse("admin:pools_campaign_change", args=[w["campaign"].pk]),
    "campaign add": lambda w: reverse("admin:pools_campaign_add"),
    "withdrawal list": lambda w: reverse("admin:pools_withdrawal_changelist"),
    "withdrawal report": lambda w: reverse(
        "admin:pools_withdrawal_change", args=[w["withdrawal"].pk]
    ),
    "export list": lambda w: reverse("admin:pools_codeexport_changelist"),
    "export report": lambda w: reverse("admin:pools_codeexport_change", args=[w["export"].pk]),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_the_pools_screens_show_no_english_to_a_russian_reader(russian, world, name):
    response = russian.get(PAGES[name](world))

    assert response.status_code == 200
    page = response.content.decode()
    assert '<html lang="ru"' in page
    words = english_words(page, data=world["data"])
    assert not words, f"English on the {name} page: {words}"
