import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from pools import counters, models
from pools.models import Code, Pool
from pools.selectors import pools_with_counts
from pools.services import pool_create, pool_launch, pool_update
from tests.factories import make_campaign, make_codes, make_pool

pytestmark = pytest.mark.django_db


def error_dict(excinfo) -> dict:
    return excinfo.value.message_dict


def test_pool_saves_as_draft_without_description_with_id_from_campaign_name():
    campaign = make_campaign("Spring Sale")

    first = pool_create(campaign=campaign)
    second = pool_create(campaign=campaign)

    assert first.status == Pool.Status.DRAFT
    assert first.description == ""
    assert (first.slug, second.slug) == ("spring-sale-1", "spring-sale-2")
    assert (first.template_parameter, second.template_parameter) == (
        "SPRING_SALE_1",
        "SPRING_SALE_2",
    )


def test_pool_id_comes_from_description_and_stays_unique():
    campaign = make_campaign()

    first = pool_create(campaign=campaign, description="Black Friday 2026")
    second = pool_create(campaign=campaign, description="Black Friday 2026")

    assert (first.slug, second.slug) == ("black-friday-2026", "black-friday-2026-2")
    assert second.template_parameter == "BLACK_FRIDAY_2026_2"


def test_template_parameter_starting_with_digit_gets_a_prefix():
    pool = make_pool(description="2026 winter")

    assert pool.template_parameter == "P_2026_WINTER"


def test_pool_id_and_parameter_can_be_chosen():
    pool = make_pool(slug="vip-only", template_parameter="VipCode")

    assert (pool.slug, pool.template_parameter) == ("vip-only", "VipCode")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"slug": "has spaces"}, "slug"),
        ({"slug": "ünïcode/slash"}, "slug"),
        ({"template_parameter": "1ST"}, "template_parameter"),
        ({"template_parameter": "with-dash"}, "template_parameter"),
    ],
)
def test_pool_id_must_be_url_safe_and_parameter_an_identifier(fields, field):
    with pytest.raises(ValidationError) as excinfo:
        make_pool(**fields)

    assert field in error_dict(excinfo)
    assert not Pool.objects.exists()


def test_pool_id_and_parameter_are_unique():
    make_pool(slug="taken", template_parameter="TAKEN")

    with pytest.raises(ValidationError) as excinfo:
        make_pool(slug="taken", template_parameter="TAKEN")

    assert set(error_dict(excinfo)) == {"slug", "template_parameter"}


def test_launch_without_description_is_refused():
    pool = pool_create(campaign=make_campaign())

    with pytest.raises(ValidationError) as excinfo:
        pool_launch(pool=pool)

    assert error_dict(excinfo) == {"description": [models.DESCRIPTION_REQUIRED_FOR_LAUNCH]}
    pool.refresh_from_db()
    assert pool.status == Pool.Status.DRAFT


def test_launch_makes_the_pool_active_and_records_who(django_user_model):
    user = django_user_model.objects.create_user("launcher")
    pool = pool_create(campaign=make_campaign())
    pool_update(pool=pool, description="Codes for the newsletter")

    before = timezone.now()
    pool_launch(pool=pool, user=user)

    pool.refresh_from_db()
    assert pool.is_active
    assert pool.launched_by == user
    assert before <= pool.launched_at <= timezone.now()


def test_launch_twice_is_refused():
    pool = make_pool(launched=True)

    with pytest.raises(ValidationError, match="already active"):
        pool_launch(pool=pool)


def test_status_cannot_be_set_around_launch():
    pool = make_pool()

    with pytest.raises(ValidationError) as excinfo:
        pool_update(pool=pool, status=Pool.Status.ACTIVE)

    assert "status" in error_dict(excinfo)
    assert Pool.objects.get().status == Pool.Status.DRAFT


def test_issue_check_and_multiple_use_are_mutually_exclusive():
    with pytest.raises(ValidationError) as excinfo:
        make_pool(require_issue_before_redeem=True, issued_validity_days=7, allow_multiple_use=True)

    errors = error_dict(excinfo)
    assert "require_issue_before_redeem" not in errors  # said once, not twice
    assert errors["allow_multiple_use"] == [models.ISSUE_CHECK_EXCLUDES_MULTIPLE_USE]
    assert not Pool.objects.exists()


def test_issue_check_requires_a_validity_period():
    with pytest.raises(ValidationError) as excinfo:
        make_pool(require_issue_before_redeem=True)

    assert error_dict(excinfo) == {"issued_validity_days": [models.VALIDITY_PERIOD_REQUIRED]}
    pool = make_pool(require_issue_before_redeem=True, issued_validity_days=30)
    assert pool.issued_validity_days == 30


def test_notification_requires_a_threshold():
    with pytest.raises(ValidationError) as excinfo:
        make_pool(notify_below_enabled=True)

    assert error_dict(excinfo) == {"notify_below": [models.NOTIFY_THRESHOLD_REQUIRED]}


@pytest.mark.parametrize(
    "field, value",
    [("slug", "renamed"), ("template_parameter", "RENAMED"), ("allow_multiple_use", False)],
)
def test_active_pool_keeps_its_id_parameter_and_multiple_use(field, value):
    pool = make_pool(allow_multiple_use=True, launched=True)
    before = getattr(pool, field)

    with pytest.raises(ValidationError) as excinfo:
        pool_update(pool=pool, **{field: value})

    assert list(error_dict(excinfo)) == [field]
    assert getattr(Pool.objects.get(), field) == before


def test_active_pool_other_settings_can_change():
    pool = make_pool(launched=True)

    pool_update(pool=pool, description="New text", notify_below_enabled=True, notify_below=100)

    stored = Pool.objects.get()
    assert (stored.description, stored.notify_below) == ("New text", 100)


def test_multiple_use_can_change_while_draft():
    pool = make_pool(allow_multiple_use=True)

    pool_update(pool=pool, allow_multiple_use=False)

    assert Pool.objects.get().allow_multiple_use is False


def test_database_refuses_what_the_services_refuse():
    pool = make_pool()

    pool.require_issue_before_redeem, pool.issued_validity_days = True, 7
    pool.allow_multiple_use = True
    with pytest.raises(IntegrityError), transaction.atomic():
        pool.save()

    make_codes(pool, ["DUP"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Code.objects.create(pool=pool, code="DUP")

    Pool.objects.filter(pk=pool.pk).update(description="")
    with pytest.raises(IntegrityError), transaction.atomic():
        Pool.objects.filter(pk=pool.pk).update(status=Pool.Status.ACTIVE)


def test_same_code_can_live_in_two_pools():
    make_codes(make_pool(), ["SHARED"])
    make_codes(make_pool(), ["SHARED"])

    assert Code.objects.filter(code="SHARED").count() == 2


def test_code_counts_add_up_across_counter_shards():
    pool = make_pool()
    for _ in range(50):
        counters.pool_counts_add(pool_id=pool.pk, available=2)
    counters.pool_counts_add(pool_id=pool.pk, available=-3, issued=2, redeemed=1)

    counted = pools_with_counts().get(pk=pool.pk)

    assert (counted.codes_available, counted.codes_issued, counted.codes_redeemed) == (97, 2, 1)
    assert pool.counters.count() <= counters.COUNTER_SHARDS


def test_pool_without_codes_counts_zero():
    pool = make_pool()

    counted = pools_with_counts().get(pk=pool.pk)

    assert (counted.codes_available, counted.codes_issued, counted.codes_redeemed) == (0, 0, 0)
