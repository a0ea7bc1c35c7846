"""The admin's screens for a live pool: pause, resume, end, withdraw, search, the code's page,
the launch confirmation and the home page."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from notifications.services import NO_SUBSCRIBERS, subscription_add
from pools import admin as pools_admin
from pools import selectors
from pools.code_services import code_issue, code_redeem, codes_withdraw
from pools.models import Code, Pool, PoolEvent, Withdrawal
from tests.factories import change_url, make_codes, make_manager, make_pool

pytestmark = pytest.mark.django_db


def test_pause_resume_end_from_the_pool_page(manager_client, manager):
    pool = make_pool(launched=True)
    page = manager_client.get(change_url(pool)).content.decode()
    pause_url = reverse("admin:pools_pool_pause", args=[pool.pk])
    assert pause_url in page
    assert reverse("admin:pools_pool_resume", args=[pool.pk]) not in page

    confirm = manager_client.get(pause_url).content.decode()
    assert "Pause" in confirm and 'name="reason"' in confirm
    response = manager_client.post(pause_url, {"reason": "Leak", "confirm": "1"}, follow=True)

    assert pools_admin.PAUSED % {"pool": pool} in response.content.decode()
    assert Pool.objects.get().status == Pool.Status.PAUSED
    page = response.content.decode()
    assert "Pool history" in page and "Leak" in page
    assert LogEntry.objects.filter(object_id=str(pool.pk), user=manager).exists()

    manager_client.post(reverse("admin:pools_pool_resume", args=[pool.pk]), {"confirm": "1"})
    assert Pool.objects.get().status == Pool.Status.ACTIVE

    end_url = reverse("admin:pools_pool_end", args=[pool.pk])
    assert "Stop redemptions too" in manager_client.get(end_url).content.decode()
    response = manager_client.post(end_url, {"stop_redemptions": "on", "confirm": "1"}, follow=True)
    stored = Pool.objects.get()
    assert (stored.status, stored.redemptions_stopped) == (Pool.Status.ENDED, True)
    assert pools_admin.ENDED_STOPPED % {"pool": pool} in response.content.decode()
    actions = list(PoolEvent.objects.values_list("action", "user"))
    assert actions[:3] == [
        ("ended_stopped", manager.pk),
        ("resumed", manager.pk),
        ("paused", manager.pk),
    ]


def test_a_refused_transition_is_told(manager_client):
    pool = make_pool(launched=True)
    response = manager_client.post(
        reverse("admin:pools_pool_resume", args=[pool.pk]), {"confirm": "1"}, follow=True
    )
    assert "Only a paused pool can be resumed; this one is active." in response.content.decode()


@pytest.mark.parametrize("action", ["pause", "end", "withdraw"])
def test_viewers_see_no_status_buttons_and_a_forged_post_is_refused(viewer_client, action):
    pool = make_pool(launched=True)
    make_codes(pool, ["F1"])
    url = reverse(f"admin:pools_pool_{action}", args=[pool.pk])

    page = viewer_client.get(change_url(pool)).content.decode()
    response = viewer_client.post(url, {"confirm": "1", "codes": "F1"})

    assert url not in page
    assert response.status_code == 403
    stored = Pool.objects.get()
    assert stored.status == Pool.Status.ACTIVE
    assert Code.objects.get().status == Code.Status.AVAILABLE


def test_withdraw_a_pasted_and_uploaded_list(manager_client, manager, on_commit_at_once):
    from django.core.files.uploadedfile import SimpleUploadedFile

    pool = make_pool(launched=True)
    make_codes(pool, ["LEAK1", "LEAK2", "LEAK3", "KEEP"])
    url = reverse("admin:pools_pool_withdraw", args=[pool.pk])

    response = manager_client.post(
        url,
        {
            "codes": "LEAK1, LEAK2\nNOPE",
            "file": SimpleUploadedFile("leaked.csv", b"code\nLEAK3\n"),
            "reason": "Posted on a deal site",
            "confirm": "1",
        },
        follow=True,
    )

    withdrawal = Withdrawal.objects.get()
    assert (withdrawal.codes_withdrawn, withdrawal.not_found) == (3, 1)
    page = response.content.decode()
    # The file is read by the worker (here on commit): the request knew no count to tell.
    assert f"The codes of “leaked.csv” are being withdrawn from “{pool}” in the background" in page
    assert "Completed" in page and "leaked.csv" in page and "NOPE" in page
    assert set(Code.objects.filter(status="withdrawn").values_list("code", flat=True)) == {
        "LEAK1",
        "LEAK2",
        "LEAK3",
    }
    pool_page = manager_client.get(change_url(pool)).content.decode()
    assert "1 available" in pool_page and "Posted on a deal site" in pool_page

    empty = manager_client.post(url, {"codes": " ", "confirm": "1"})
    assert str(pools_admin.WITHDRAW_NOTHING) in empty.content.decode()


def test_withdraw_one_code_from_its_page_and_a_selection_from_the_list(manager_client):
    pool = make_pool(launched=True)
    one, two, three = make_codes(pool, ["S1", "S2", "S3"])

    page = manager_client.get(reverse("admin:pools_code_change", args=[one.pk])).content.decode()
    assert reverse("admin:pools_code_withdraw", args=[one.pk]) in page
    manager_client.post(reverse("admin:pools_code_withdraw", args=[one.pk]), {"reason": "leak"})
    assert Code.objects.get(pk=one.pk).status == Code.Status.WITHDRAWN

    changelist = reverse("admin:pools_code_changelist")
    data = {"action": "withdraw_selected", "_selected_action": [two.pk, three.pk]}
    asked = manager_client.post(changelist, data)
    assert "Withdraw 2 selected codes?" in asked.content.decode()
    assert Code.objects.filter(status=Code.Status.WITHDRAWN).count() == 1
    manager_client.post(changelist, {**data, "confirm": "1", "reason": "batch"})
    assert Code.objects.filter(status=Code.Status.WITHDRAWN).count() == 3


def test_viewer_cannot_withdraw_a_code(viewer_client):
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["V1"])
    page = viewer_client.get(reverse("admin:pools_code_change", args=[code.pk])).content.decode()
    response = viewer_client.post(reverse("admin:pools_code_withdraw", args=[code.pk]))
    assert "Withdraw this code" not in page
    assert response.status_code == 403


def test_codes_list_finds_exact_code_prefix_and_customer(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["SUMMER-1", "SUMMER-2", "WINTER-1", "summer-low"])
    issued = code_issue(pool=pool, customer="cust-3")
    url = reverse("admin:pools_code_changelist")

    def found(term):
        response = manager_client.get(url, {"q": term})
        return {code.code for code in response.context["cl"].result_list}

    assert found("WINTER-1") == {"WINTER-1"}
    # SQLite's LIKE ignores case; PostgreSQL's does not.
    assert found("SUMMER-") - {"summer-low"} == {"SUMMER-1", "SUMMER-2"}
    assert found("summer-") == {"SUMMER-1", "SUMMER-2", "summer-low"}
    assert found("cust-3") == {issued.code}
    assert found("MER") == set()


def test_code_page_tells_its_story_in_plain_words(manager_client, manager):
    pool = make_pool(launched=True)
    make_codes(pool, ["STORY"])
    code_issue(pool=pool, customer="cust-9", idempotency_key="msg-42")
    code_redeem(code="STORY", customer="cust-9", order_reference="order-7")
    code = Code.objects.get()

    response = manager_client.get(reverse("admin:pools_code_change", args=[code.pk]))

    page = response.content.decode()
    assert "Issued to customer cust-9 under the key “msg-42”." in page
    assert "Redeemed by customer cust-9, order order-7." in page
    assert 'name="_save"' not in page
    assert ">ID<" not in page and ">Addition<" not in page and ">Withdrawal<" not in page


def test_launch_confirmation_warns_of_likely_mistakes(manager_client):
    empty = make_pool(notify_below_enabled=True, notify_below=10)
    expired = make_pool()
    make_codes(expired, ["OLD"], status=Code.Status.EXPIRED)
    from pools.counters import pool_counts_add

    pool_counts_add(pool_id=expired.pk, available=-1, expired=1)
    low = make_pool(notify_below_enabled=True, notify_below=10)
    make_codes(low, ["L1", "L2"])
    subscription_add(user=make_manager("sub", email="sub@example.com"), pool=low)

    page = manager_client.get(
        reverse("admin:pools_pool_launch"), {"ids": f"{empty.pk},{expired.pk},{low.pk}"}
    ).content.decode()

    assert "Launch 3 pools?" in page
    assert str(selectors.NO_CODES) in page
    assert str(selectors.ALL_EXPIRED) in page
    assert "Its alert threshold (10) is above its stock (2)" in page
    assert page.count("nobody with an e-mail address is subscribed") == 1  # only `empty`
    assert NO_SUBSCRIBERS.split(":")[0] in page
    assert Pool.objects.filter(status=Pool.Status.ACTIVE).count() == 0


def test_viewer_cannot_open_or_forge_the_launch_confirmation(viewer_client):
    pool = make_pool()
    url = reverse("admin:pools_pool_launch")
    assert viewer_client.get(url, {"ids": pool.pk}).status_code == 403
    assert viewer_client.post(url, {"ids": pool.pk, "confirm": "1"}).status_code == 403
    assert Pool.objects.get().status == Pool.Status.DRAFT


def test_home_page_says_what_needs_attention_and_lists_pools_first(manager_client):
    low = make_pool(notify_below_enabled=True, notify_below=5, launched=True)
    make_codes(low, ["H1"])
    soon = make_pool(launched=True)
    make_codes(soon, ["SOON"], available_till=timezone.now() + timedelta(days=3))

    page = manager_client.get(reverse("admin:index")).content.decode()

    assert "Needs attention" in page
    assert "Pools running low on codes" in page and low.slug in page
    assert "Codes expiring within a week" in page and soon.slug in page
    assert page.index("Campaigns") < page.index("API keys")
    assert page.index("Campaigns") < page.index("Promo code pools") < page.index("Code imports")


def test_withdrawal_report_page(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["R1"])
    withdrawal = codes_withdraw(pool=pool, codes=["R1", "GONE"], reason="leak")
    page = manager_client.get(
        reverse("admin:pools_withdrawal_change", args=[withdrawal.pk])
    ).content.decode()
    assert "Withdrawal report" in page and "GONE" in page and "leak" in page


def test_a_failed_withdrawal_is_run_again_from_its_report(manager_client):
    pool = make_pool(launched=True)
    make_codes(pool, ["RUN1"])
    failed = Withdrawal.objects.create(
        pool=pool, requested="RUN1", codes_requested=1, status=Withdrawal.Status.FAILED
    )
    report = reverse("admin:pools_withdrawal_change", args=[failed.pk])
    rerun = reverse("admin:pools_withdrawal_rerun", args=[failed.pk])
    assert rerun in manager_client.get(report).content.decode()

    response = manager_client.post(rerun, follow=True)

    assert (
        f"Withdrawal #{failed.pk} is queued again: it goes on after the codes it has already done."
        in response.content.decode()
    )
    failed.refresh_from_db()
    assert failed.status == Withdrawal.Status.QUEUED
    response = manager_client.post(rerun, follow=True)  # no longer failed
    assert "Only a failed withdrawal can be run again." in response.content.decode()
