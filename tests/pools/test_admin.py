import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.urls import reverse

from pools import models
from pools.admin import LAUNCH_REFUSED, BoundedCountPaginator
from pools.groups import MANAGERS, VIEWERS
from pools.models import Code, Pool
from tests.factories import change_url, make_campaign, make_codes, make_pool

pytestmark = pytest.mark.django_db

ADD_POOL = reverse("admin:pools_pool_add")


def pool_form(campaign, **overrides):
    data = {
        "campaign": campaign.pk,
        "description": "",
        "slug": "",
        "template_parameter": "",
        "processing": Pool.Processing.INTERNAL,
        "issued_validity_days": "",
        "notify_below": "",
    }
    # The management forms of the page's inlines (subscribed staff, alerts sent), as a browser
    # sends them.
    for prefix in ("subscriptions", "low_stock_alerts"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(overrides)
    # Unticked checkboxes are not sent by a browser.
    return {key: value for key, value in data.items() if value is not False}


def test_groups_exist_after_migrate_with_their_permissions():
    managers = Group.objects.get(name=MANAGERS)
    viewers = Group.objects.get(name=VIEWERS)

    manager_perms = set(managers.permissions.values_list("codename", flat=True))
    viewer_perms = set(viewers.permissions.values_list("codename", flat=True))

    assert {"add_campaign", "change_pool", "launch_pool", "view_code"} <= manager_perms
    assert viewer_perms == {p for p in manager_perms if p.startswith("view_")}


def test_campaign_page_offers_to_add_a_pool_to_it(manager_client):
    campaign = make_campaign("Autumn")

    response = manager_client.get(reverse("admin:pools_campaign_change", args=[campaign.pk]))

    assert f'{ADD_POOL}?campaign={campaign.pk}"' in response.content.decode()
    add_page = manager_client.get(f"{ADD_POOL}?campaign={campaign.pk}").content.decode()
    assert 'placeholder="autumn-1"' in add_page
    assert 'placeholder="AUTUMN_1"' in add_page


def test_pool_screen_is_laid_out_like_the_source_document(manager_client):
    page = manager_client.get(ADD_POOL).content.decode()

    sections = ["General settings", "Codes", "Usage settings", "Low-stock alerts"]
    positions = [page.index(f'class="fieldset-heading">{title}<') for title in sections]
    assert positions == sorted(positions)
    assert "Redeem only by the customer the code was issued to" in page
    assert "Template parameter" in page


def test_pool_saved_without_description_is_a_draft_with_filled_in_id(manager_client):
    campaign = make_campaign("Winter Deals")

    response = manager_client.post(ADD_POOL, pool_form(campaign))

    assert response.status_code == 302
    pool = Pool.objects.get()
    assert (pool.status, pool.slug, pool.template_parameter) == (
        Pool.Status.DRAFT,
        "winter-deals-1",
        "WINTER_DEALS_1",
    )


def test_launch_without_description_is_refused_with_the_reason(manager_client):
    pool = make_pool(description="")

    response = manager_client.post(
        change_url(pool), pool_form(pool.campaign, slug=pool.slug, _launch="Launch"), follow=True
    )

    reason = models.DESCRIPTION_REQUIRED_FOR_LAUNCH
    assert LAUNCH_REFUSED % {"pool": pool, "reason": reason} in response.content.decode()
    assert Pool.objects.get().status == Pool.Status.DRAFT


def test_launch_saves_the_description_and_activates_the_pool(manager_client, manager):
    pool = make_pool(description="")

    response = manager_client.post(
        change_url(pool),
        pool_form(pool.campaign, slug=pool.slug, description="For the newsletter", _launch="1"),
        follow=True,
    )
    # Saved, then asked first.
    pool.refresh_from_db()
    assert (pool.description, pool.status) == ("For the newsletter", Pool.Status.DRAFT)
    assert f"Launch {pool.slug}?" in response.content.decode()
    response = manager_client.post(
        reverse("admin:pools_pool_launch"), {"ids": str(pool.pk), "confirm": "1"}, follow=True
    )

    pool.refresh_from_db()
    assert pool.is_active
    assert pool.description == "For the newsletter"
    assert pool.launched_by == manager
    page = response.content.decode()
    assert "is launched and active" in page
    assert LogEntry.objects.filter(
        object_id=str(pool.pk), user=manager, change_message="Launched the pool."
    ).exists()
    history = manager_client.get(reverse("admin:pools_pool_history", args=[pool.pk]))
    assert "Launched the pool." in history.content.decode()


def test_both_usage_options_are_refused_on_both_fields(manager_client):
    campaign = make_campaign()

    response = manager_client.post(
        ADD_POOL,
        pool_form(
            campaign,
            require_issue_before_redeem="on",
            issued_validity_days="5",
            allow_multiple_use="on",
        ),
    )

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "require_issue_before_redeem" not in form.errors  # said once, not twice
    assert form.errors["allow_multiple_use"] == [models.ISSUE_CHECK_EXCLUDES_MULTIPLE_USE]
    assert not Pool.objects.exists()


def test_issue_check_without_validity_period_is_refused(manager_client):
    response = manager_client.post(
        ADD_POOL, pool_form(make_campaign(), require_issue_before_redeem="on")
    )

    errors = response.context["adminform"].form.errors
    assert errors["issued_validity_days"] == [models.VALIDITY_PERIOD_REQUIRED]
    assert not Pool.objects.exists()


def test_active_pool_locks_id_parameter_and_multiple_use(manager_client):
    pool = make_pool(allow_multiple_use=True, launched=True)

    page = manager_client.get(change_url(pool))
    form_fields = page.context["adminform"].form.fields
    assert not {"slug", "template_parameter", "allow_multiple_use"} & set(form_fields)
    assert 'name="_launch"' not in page.content.decode()

    manager_client.post(
        change_url(pool),
        pool_form(
            pool.campaign,
            description="Still live",
            slug="forged",
            template_parameter="FORGED",
            allow_multiple_use=False,
        ),
    )

    stored = Pool.objects.get()
    assert stored.description == "Still live"
    assert (stored.slug, stored.template_parameter, stored.allow_multiple_use) == (
        pool.slug,
        pool.template_parameter,
        True,
    )


def test_viewer_sees_no_launch_button_and_a_forged_launch_is_refused(viewer_client):
    pool = make_pool()

    page = viewer_client.get(change_url(pool))
    assert page.status_code == 200
    assert 'name="_launch"' not in page.content.decode()

    response = viewer_client.post(
        change_url(pool), pool_form(pool.campaign, slug=pool.slug, _launch="1")
    )

    assert response.status_code == 403
    assert Pool.objects.get().status == Pool.Status.DRAFT


def test_manager_without_launch_permission_cannot_launch(client, django_user_model):
    user = django_user_model.objects.create_user("editor", is_staff=True)
    user.user_permissions.add(
        *Group.objects.get(name=MANAGERS).permissions.exclude(codename="launch_pool")
    )
    client.force_login(user)
    pool = make_pool()

    response = client.post(change_url(pool), pool_form(pool.campaign, slug=pool.slug, _launch="1"))

    assert response.status_code == 403
    assert not Pool.objects.get().is_active


def test_launch_action_on_the_list(manager_client):
    ready = make_pool(description="Ready")
    not_ready = make_pool(description="")

    asked = manager_client.post(
        reverse("admin:pools_pool_changelist"),
        {"action": "launch_selected", "_selected_action": [ready.pk, not_ready.pk]},
        follow=True,
    )
    page = asked.content.decode()
    assert "Launch 2 pools?" in page
    assert str(models.DESCRIPTION_REQUIRED_FOR_LAUNCH) in page
    assert Pool.objects.filter(status=Pool.Status.ACTIVE).count() == 0

    manager_client.post(
        reverse("admin:pools_pool_launch"),
        {"ids": f"{ready.pk},{not_ready.pk}", "confirm": "1"},
    )

    ready.refresh_from_db()
    not_ready.refresh_from_db()
    assert (ready.status, not_ready.status) == (Pool.Status.ACTIVE, Pool.Status.DRAFT)


def test_campaign_list_shows_pools_with_status_and_counts_without_per_row_queries(
    manager_client, django_assert_max_num_queries
):
    for number in range(5):
        campaign = make_campaign(f"Campaign {number}")
        for _ in range(3):
            pool = make_pool(campaign)
            make_codes(pool, [f"C{pool.pk}-{i}" for i in range(4)])
    pool = Pool.objects.first()
    make_pool(campaign, launched=True)

    with django_assert_max_num_queries(12):
        response = manager_client.get(reverse("admin:pools_campaign_changelist"))

    page = response.content.decode()
    assert f">{pool.slug}</a>" in page
    assert "4 available · 0 issued · 0 redeemed" in page
    assert 'class="pool-status pool-status-active"' in page


def test_pool_page_links_to_its_codes_which_search_and_filter(manager_client):
    pool = make_pool()
    make_codes(pool, ["ALPHA1", "BETA22", "GAMMA3"])
    Code.objects.filter(code="BETA22").update(status=Code.Status.ISSUED)
    codes_url = reverse("admin:pools_code_changelist")

    page = manager_client.get(change_url(pool)).content.decode()
    assert f"{codes_url}?pool__id__exact={pool.pk}" in page

    found = manager_client.get(codes_url, {"pool__id__exact": pool.pk, "q": "alpha1"})
    assert [c.code for c in found.context["cl"].result_list] == ["ALPHA1"]
    issued = manager_client.get(codes_url, {"pool__id__exact": pool.pk, "status__exact": "issued"})
    assert [c.code for c in issued.context["cl"].result_list] == ["BETA22"]


def test_codes_of_all_pools_filter_by_any_status_newest_first(manager_client):
    first, second = make_pool(), make_pool()
    make_codes(first, ["F1", "F2", "F3"])
    make_codes(second, ["S1", "S2"])
    statuses = {"F1": "withdrawn", "F2": "redeemed", "S1": "withdrawn", "S2": "expired"}
    for code, status in statuses.items():
        Code.objects.filter(code=code).update(status=status)
    codes_url = reverse("admin:pools_code_changelist")

    for status in Code.Status.values:
        page = manager_client.get(codes_url, {"status__exact": status})
        expected = sorted(
            (c for c in ["F1", "F2", "F3", "S1", "S2"] if statuses.get(c, "available") == status),
            key=lambda c: -Code.objects.get(code=c).pk,
        )
        assert [c.code for c in page.context["cl"].result_list] == expected, status


def test_code_list_counts_are_bounded(manager_client, monkeypatch):
    monkeypatch.setattr(BoundedCountPaginator, "COUNT_LIMIT", 3)
    pool = make_pool()
    make_codes(pool, [f"CODE{i}" for i in range(5)])

    page = manager_client.get(reverse("admin:pools_code_changelist")).content.decode()

    assert "more than 3 codes" in page


def test_active_pool_cannot_be_deleted_and_draft_delete_summarises_codes(manager_client):
    active = make_pool(launched=True)
    draft = make_pool()
    make_codes(draft, [f"D{i}" for i in range(3)])

    refused = manager_client.get(reverse("admin:pools_pool_delete", args=[active.pk]))
    assert refused.status_code == 403
    confirm = manager_client.get(reverse("admin:pools_pool_delete", args=[draft.pk]))
    assert "with all its codes" in confirm.content.decode()
    manager_client.post(reverse("admin:pools_pool_delete", args=[draft.pk]), {"post": "yes"})
    assert list(Pool.objects.all()) == [active]
    assert not Code.objects.exists()


def test_code_page_shows_its_history_and_marks_it_issued(manager_client):
    from pools.code_services import code_redeem

    pool = make_pool(allow_multiple_use=True, launched=True)
    (code,) = make_codes(pool, ["HIST1"])
    code_redeem(code="HIST1", customer="earlier", order_reference="o-77")
    url = reverse("admin:pools_code_change", args=[code.pk])

    page = manager_client.get(url).content.decode()
    assert "o-77" in page and "earlier" in page
    assert reverse("admin:pools_code_mark_issued", args=[code.pk]) in page

    response = manager_client.post(
        reverse("admin:pools_code_mark_issued", args=[code.pk]), {"customer": "ann"}, follow=True
    )

    assert "marked as issued to ann" in response.content.decode()
    assert code.issues.get().customer == "ann"


def test_viewer_cannot_mark_issued(viewer_client):
    pool = make_pool(launched=True)
    (code,) = make_codes(pool, ["V1"])

    page = viewer_client.get(reverse("admin:pools_code_change", args=[code.pk])).content.decode()
    response = viewer_client.post(
        reverse("admin:pools_code_mark_issued", args=[code.pk]), {"customer": "x"}
    )

    assert "Mark as issued" not in page
    assert response.status_code == 403
    assert Code.objects.get().status == Code.Status.AVAILABLE


def test_pool_page_shows_stock_and_template_snippet_and_preview(manager_client):
    pool = make_pool(template_parameter="AUTUMN", launched=True)
    make_codes(pool, ["A1", "A2"])

    page = manager_client.get(change_url(pool)).content.decode()
    assert "stock (can still be issued): <strong>2</strong>" in page
    assert "{{ promo.AUTUMN }}" in page

    preview = manager_client.post(
        reverse("admin:pools_pool_message_preview"), {"text": "Yours: {{ promo.AUTUMN }}"}
    )
    assert "Yours: <strong>A1</strong>" in preview.content.decode()
    unknown = manager_client.post(
        reverse("admin:pools_pool_message_preview"), {"text": "{{ promo.NOPE }}"}
    )
    assert "No pool has the template parameter NOPE." in unknown.content.decode()


def test_managers_create_api_keys_shown_once(manager_client):
    from rest_framework_api_key.models import APIKey

    scope = {
        "scope-TOTAL_FORMS": "1",
        "scope-INITIAL_FORMS": "0",
        "scope-0-operations": ["issue"],
        "scope-0-every_pool": "on",
    }
    response = manager_client.post(
        reverse("admin:rest_framework_api_key_apikey_add"), {"name": "crm", **scope}, follow=True
    )

    shown = re.search(r"\b(\w{8}\.\w{32})\b", response.content.decode()).group(1)
    assert APIKey.objects.is_valid(shown)
    key = APIKey.objects.get()
    later = manager_client.get(reverse("admin:rest_framework_api_key_apikey_change", args=[key.pk]))
    assert shown not in later.content.decode()


def test_codes_list_of_a_pool_and_a_status_newest_first(manager_client):
    pool, other = make_pool(), make_pool()
    make_codes(pool, ["P1", "P2", "P3"])
    make_codes(other, ["O1"])
    Code.objects.filter(code="P2").update(status=Code.Status.ISSUED)
    url = reverse("admin:pools_code_changelist")

    of_pool = manager_client.get(url, {"pool__id__exact": pool.pk})
    available = manager_client.get(url, {"pool__id__exact": pool.pk, "status__exact": "available"})
    wrong = manager_client.get(url, {"pool__id__exact": "x"})

    assert [c.code for c in of_pool.context["cl"].result_list] == ["P3", "P2", "P1"]
    assert [c.code for c in available.context["cl"].result_list] == ["P3", "P1"]
    assert wrong.status_code == 302 and "e=1" in wrong.url
