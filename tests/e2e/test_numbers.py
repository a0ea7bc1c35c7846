"""The numbers a manager reads agree on the screen: an alert sent to nobody says so on the home
page and on the pool page alike; the stock chart starts on the day the pool did and counts codes
given back; only a live pool that had codes wears "low stock"."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from imports.engine import import_run
from imports.services import import_text_start
from pools.code_services import code_issue, code_release
from pools.services import pool_end, pool_launch, pool_pause
from tests.factories import alerting_pool, make_codes, make_manager, make_pool

pytestmark = [pytest.mark.e2e]

NOBODY = "sent to nobody: no subscribed staff member has an e-mail address"


def log_in(page, url, username="nia"):
    make_manager(username, email=f"{username}@example.com")
    page.goto(f"{url}/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("secret-pass")
    page.get_by_role("button", name="Log in").click()


def test_an_alert_sent_to_nobody_says_so_on_the_home_page_and_the_pool_page(
    browser_page, live_server
):
    page = browser_page
    pool = alerting_pool(threshold=3, codes=3, slug="nobody-hears")
    code_issue(pool=pool, customer="c1")  # 2 left: an alert, and nobody is subscribed
    log_in(page, live_server.url)

    alerts = page.get_by_role("region", name="Low-stock alerts today")
    expect(alerts).to_contain_text("nobody-hears: 2 left (alert below 3) at ")
    expect(alerts).to_contain_text(NOBODY)
    expect(page.get_by_text("Low-stock alerts sent today")).to_have_count(0)

    alerts.get_by_role("link", name="nobody-hears").click()
    inline = page.locator("#low_stock_alerts-group")
    expect(inline).to_contain_text(NOBODY)
    expect(inline).not_to_contain_text("not sent yet")


def test_the_stock_chart_starts_with_the_pool_and_counts_codes_given_back(
    browser_page, live_server
):
    page = browser_page
    pool = make_pool(launched=True)
    import_run(import_id=import_text_start(pool=pool, text="R1\nR2\nR3\nR4\nR5").pk)
    code_issue(pool=pool, customer="c1", idempotency_key="k1")
    code_issue(pool=pool, customer="c2", idempotency_key="k2")
    code_release(pool=pool, code="R1", idempotency_key="k1")  # 5 added, 2 issued, 1 back: 4
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/pools/pool/{pool.pk}/change/?chart=7")

    today = f"{timezone.localdate():%Y-%m-%d}"
    chart = page.locator("#stock-chart svg")
    # Each point's and bar's number on hover: the pool was created today, so one point only.
    assert chart.locator("circle title").all_text_contents() == [f"{today}: stock 4"]
    assert chart.locator("rect title").all_text_contents() == [
        f"{today}: 5 added",
        f"{today}: 2 issued",
        f"{today}: 1 given back",
    ]
    page.get_by_text("The numbers").click()
    expect(page.locator(".stock-table tbody tr td")).to_have_text(
        [today, "5", "2", "1", "0", "0", "4"]
    )


def test_only_a_live_pool_that_had_codes_wears_low_stock(browser_page, live_server):
    page = browser_page

    def low(slug, *, codes=1, launched=True):
        pool = make_pool(slug=slug, notify_below_enabled=True, notify_below=5)
        make_codes(pool, [f"{slug}-{n}" for n in range(codes)])
        if launched:
            pool_launch(pool=pool)
        return pool

    low("a-draft", launched=False)
    low("an-empty-one", codes=0)
    pool_end(pool=low("an-ended-one"))
    pool_pause(pool=low("a-paused-one"))
    low("an-active-one")
    log_in(page, live_server.url)

    page.goto(f"{live_server.url}/admin/pools/pool/")

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    badged = rows.filter(has=page.locator(".stock-low")).locator("th a").all_text_contents()
    assert sorted(badged) == ["a-paused-one", "an-active-one"]
    page.goto(f"{live_server.url}/admin/")
    low_pools = page.get_by_role("region", name="Pools running low on codes")
    listed = low_pools.get_by_role("link").all_text_contents()
    assert sorted(listed) == ["a-paused-one", "an-active-one"]
