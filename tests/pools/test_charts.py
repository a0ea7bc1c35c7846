import pytest
from django.urls import reverse

from imports.engine import import_run
from imports.services import import_text_start
from pools.code_services import code_issue, code_redeem
from pools.selectors import pool_daily_activity, pool_stock
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
    assert yesterday["stock"] == 0  # before today's 4 added and 2 issued


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
    fine = make_pool(campaign, notify_below_enabled=True, notify_below=1)
    make_codes(fine, ["F1", "F2"])

    campaigns = manager_client.get(reverse("admin:pools_campaign_changelist")).content.decode()
    pools = manager_client.get(reverse("admin:pools_pool_changelist")).content.decode()

    assert campaigns.count("low stock</span>") == 1
    assert pools.count("low stock</span>") == 1
    assert 'title="Alert when fewer than 5 codes are left"' in campaigns
