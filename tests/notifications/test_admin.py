import pytest
from django.urls import reverse
from django.utils import timezone

from notifications.models import LowStockAlert, StaffPreference, Subscription
from tests.factories import NOW, make_campaign, make_pool

pytestmark = pytest.mark.django_db


def test_subscribe_me_and_unsubscribe_on_the_pool_page(manager_client, manager):
    pool = make_pool()
    url = reverse("admin:pools_pool_change", args=[pool.pk])
    toggle = reverse("admin:notifications_pool_subscription", args=[pool.pk])

    assert "Subscribe me" in manager_client.get(url).content.decode()
    manager_client.post(toggle, {"subscribe": "1"})
    assert Subscription.objects.filter(user=manager, pool=pool).exists()
    assert "Unsubscribe" in manager_client.get(url).content.decode()

    manager_client.post(toggle, {"subscribe": "0"})
    assert not Subscription.objects.exists()


def test_pool_page_lists_subscribers_and_alerts_sent(manager_client, manager):
    pool = make_pool()
    Subscription.objects.create(user=manager, pool=pool)
    alert = LowStockAlert.objects.create(
        pool=pool, crossing=1, stock=4, threshold=10, sent_at=timezone.now()
    )
    alert.deliveries.create(user=manager, email="boss@example.com")

    page = manager_client.get(reverse("admin:pools_pool_change", args=[pool.pk])).content.decode()

    assert "subscribed staff" in page.lower()
    assert "low-stock alerts" in page.lower()
    assert "sent to boss@example.com<" in page


def test_campaign_page_manages_campaign_subscribers(manager_client, manager):
    campaign = make_campaign("Spring")

    manager_client.post(
        reverse("admin:pools_campaign_change", args=[campaign.pk]),
        {
            "name": "Spring",
            "description": "",
            "pools-TOTAL_FORMS": "0",
            "pools-INITIAL_FORMS": "0",
            "subscriptions-TOTAL_FORMS": "1",
            "subscriptions-INITIAL_FORMS": "0",
            "subscriptions-0-user": manager.pk,
        },
    )

    assert Subscription.objects.get().campaign == campaign


def test_staff_turn_import_notices_off_for_themselves(manager_client, manager):
    pool = make_pool()
    add_codes = f"{reverse('admin:imports_import_add')}?pool={pool.pk}"
    assert "Stop these e-mails" in manager_client.get(add_codes).content.decode()

    manager_client.post(
        reverse("admin:notifications_import_notices"), {"enabled": "0", "next": add_codes}
    )

    assert StaffPreference.objects.get(user=manager).import_finished_emails is False
    assert "E-mail me when my imports finish" in manager_client.get(add_codes).content.decode()


def test_staff_who_may_not_see_a_pool_cannot_subscribe_to_its_alerts(client):
    """A staff account outside the promo groups (say, support's) would learn of the pool's
    stock by e-mail."""
    from django.contrib.auth import get_user_model

    pool = make_pool()
    outsider = get_user_model().objects.create_user(
        "support", email="support@example.com", is_staff=True
    )
    client.force_login(outsider)

    answer = client.post(
        reverse("admin:notifications_pool_subscription", args=[pool.pk]), {"subscribe": "1"}
    )

    assert answer.status_code in (403, 404)
    assert not Subscription.objects.exists()


def test_the_home_page_lists_the_alerts_of_today_in_the_projects_time_zone(
    manager_client, frozen, settings
):
    """NOW is 12:38 in Kolkata: today there began at 18:30 UTC the day before."""
    from datetime import timedelta

    settings.TIME_ZONE = "Asia/Kolkata"
    today_there = make_pool(slug="after-midnight-there")
    yesterday = make_pool(slug="before-midnight-there")
    for pool, at in ((today_there, timedelta(hours=11)), (yesterday, timedelta(hours=13))):
        alert = LowStockAlert.objects.create(pool=pool, crossing=1, stock=1, threshold=2)
        LowStockAlert.objects.filter(pk=alert.pk).update(created_at=NOW - at)

    page = manager_client.get(reverse("admin:index")).content.decode()

    assert "after-midnight-there" in page
    assert "before-midnight-there" not in page
