"""The manager's main journey once in Russian, in a real browser with a real worker: sign in,
choose Русский, create a campaign and a pool, paste codes, watch the import finish and read its
report, launch; every heading and button on the way is Russian."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from imports.models import Import
from pools.models import Code, Pool
from tests.factories import make_manager
from tests.i18n.conftest import LATIN_WORD, english_words

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def russian(text: str, words: set[str]) -> str:
    """Fail unless `text` is Russian: Cyrillic, and no word of the product's English."""
    english = [w for w in LATIN_WORD.findall(text) if w in words]
    assert CYRILLIC.search(text) and not english, f"not Russian: {text!r} ({', '.join(english)})"
    return text


def test_a_manager_sets_up_fills_and_launches_a_pool_in_russian(
    browser_page, live_server, live_worker, screenshot
):
    page = browser_page
    words = english_words()
    make_manager("mia", email="mia@example.com")
    url = live_server.url

    def heading() -> str:
        return russian(page.locator("#content h1").first.inner_text(), words)

    # Sign in (the browser asks for English), then choose Русский in the header.
    page.goto(f"{url}/admin/")
    page.locator("#id_username").fill("mia")
    page.locator("#id_password").fill("secret-pass")
    page.locator("#login-form input[type=submit]").click()
    expect(page.locator("#site-name")).to_have_text("Promo code pools")
    page.get_by_role("button", name="Русский").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("#site-name")).to_have_text("Пулы промокодов")
    expect(page.locator("#content h1")).to_have_text("Кампании и пулы промокодов")
    expect(page.get_by_role("button", name="Русский")).to_be_disabled()
    russian(page.locator("#content-main").inner_text(), words)

    # A campaign.
    page.goto(f"{url}{reverse('admin:pools_campaign_add')}")
    heading()
    page.locator("#id_name").fill("Весенняя распродажа")
    page.get_by_role("button", name="Сохранить и продолжить редактирование").click()
    russian(page.locator(".messagelist").inner_text(), words)

    # A pool, from the campaign's page.
    add_pool = page.locator("#content a.addlink[href*='/pools/pool/add/']")
    russian(add_pool.inner_text(), words)
    add_pool.click()
    heading()
    for label in page.locator("#pool_form label").all():
        if label.is_visible():
            russian(label.inner_text(), words)
    page.locator("#id_description").fill("Приветственные коды")
    page.locator("#id_slug").fill("privet")
    page.locator("#id_template_parameter").fill("PRIVET")
    page.get_by_role("button", name="Сохранить и продолжить редактирование").click()
    russian(page.locator(".messagelist").inner_text(), words)
    pool = Pool.objects.get(slug="privet")

    # Paste codes: the import's report follows it to the end.
    add_codes = page.locator(f"a[href*='{reverse('admin:imports_import_add')}?pool=']").first
    russian(add_codes.inner_text(), words)
    add_codes.click()
    heading()
    russian(page.locator("#paste-heading").inner_text(), words)
    page.locator("#id_paste-text").fill("PRIVET-1\nPRIVET-2, PRIVET-3\nPRIVET-1")
    paste = page.locator("#paste-form input[type=submit]")
    russian(paste.get_attribute("value"), words)
    paste.click()
    job = Import.objects.get(pool=pool)
    page.wait_for_url(f"**{reverse('admin:imports_import_change', args=[job.pk])}")
    page.locator(".import-ended").wait_for()
    heading()
    russian(page.locator("table.import-report").inner_text(), words)
    assert Code.objects.filter(pool=pool).count() == 3
    screenshot(page, "import-report-ru", full_page=True)

    # Launch, after the confirmation that says what locks.
    page.goto(f"{url}{reverse('admin:pools_pool_change', args=[pool.pk])}")
    heading()
    launch = page.locator("input[name=_launch]")
    russian(launch.get_attribute("value"), words)
    launch.click()
    heading()
    confirm = page.locator("input[name=confirm]")
    russian(confirm.get_attribute("value"), words)
    confirm.click()
    russian(page.locator(".messagelist").inner_text(), words)
    pool.refresh_from_db()
    assert pool.is_active
    heading()
    screenshot(page, "pool-ru", full_page=True)
