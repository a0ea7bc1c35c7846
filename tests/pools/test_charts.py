import re

import pytest
from django.urls import reverse

from imports.engine import import_run
from imports.services import import_text_start
from pools.code_services import code_issue, code_redeem
from pools.selectors import pool_daily_activity, pool_stock
from pools.services import pool_end, pool_launch, pool_pause
from tests.factories import make_campaign, make_codes, make_pool

pytestmark = pytest.mark.django_db


def test_daily_activity_counts_today_and_works_the_stock_back():
    pool = make_pool(launched=True)
    import_run(import_id=import_text_start(pool=pool, text="A\nB\nC\nD").pk)
    first = code_issue(pool=pool, customer="c1")
    code_issue(pool=pool, customer="c2")
    code_redeem(code=first.code, customer="c1")

    activity = pool_daily_activity(pool, days=3, stock=pool_stock(pool=pool))

    assert len(activity) == 3
    today, yesterday = activity[-1], activity[-2]
    assert (today["added"], today["issued"], today["redeemed"], today["stock"]) == (4, 2, 1, 2)
    assert yesterday["stock"] is None  # the pool was created today: no stock before it


def test_pool_page_draws_the_stock_chart_without_javascript(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["X1"])
    code_issue(pool=pool, customer="c")

    page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()

    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    assert 'role="img"' in page and "<polyline" in page
    assert "issued</title>" in page


def test_low_stock_shows_at_a_glance(manager_client):
    campaign = make_campaign("Glance")
    low = make_pool(campaign, notify_below_enabled=True, notify_below=5)
    make_codes(low, ["L1", "L2"])
    pool_launch(pool=low)
    fine = make_pool(campaign, notify_below_enabled=True, notify_below=1, launched=True)
    make_codes(fine, ["F1", "F2"])

    campaigns = manager_client.get(reverse("admin:pools_campaign_changelist")).content.decode()
    pools = manager_client.get(reverse("admin:pools_pool_changelist")).content.decode()

    assert campaigns.count("low stock</span>") == 1
    assert pools.count("low stock</span>") == 1
    assert 'title="Alert when fewer than 5 codes are left"' in campaigns


def test_only_a_live_pool_that_had_codes_wears_the_low_stock_badge(manager_client):
    """A draft issues nothing yet, an ended pool never again, and an empty pool is empty, not
    low: none of them wears the badge; a paused pool below its threshold does."""

    def low_pool(name, *, codes=("C1",)):
        pool = make_pool(slug=name, notify_below_enabled=True, notify_below=5)
        make_codes(pool, [f"{name}-{code}" for code in codes])
        return pool

    low_pool("draft")
    empty = low_pool("empty-active", codes=())
    pool_launch(pool=empty)
    ended = low_pool("ended")
    pool_launch(pool=ended)
    pool_end(pool=ended)
    paused = low_pool("paused")
    pool_launch(pool=paused)
    pool_pause(pool=paused)
    active = low_pool("active")
    pool_launch(pool=active)

    pools = manager_client.get(reverse("admin:pools_pool_changelist")).content.decode()
    home = manager_client.get(reverse("admin:index")).content.decode()

    def row(slug):
        return re.search(rf">{slug}</a>.*?</tr>", pools, re.S).group(0)

    badged = {slug for slug in ("draft", "empty-active", "ended", "paused", "active")}
    badged = {slug for slug in badged if "low stock</span>" in row(slug)}
    assert badged == {"paused", "active"}
    section = re.search(r'aria-label="Pools running low on codes".*?</section>', home, re.S)
    assert set(re.findall(r'/change/">([a-z-]+)</a>', section.group(0))) == {"paused", "active"}
