"""Writes and state transitions of campaigns and pools (create, edit, launch, pause, resume,
end).

The admin, the Django shell, the HTTP API and Celery tasks all call these, so a rule holds in every
one of them or in none. What happens to single codes (issue, redeem, expire) is in
code_services/.
"""

import re
from collections.abc import Iterator

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from .models import Campaign, Pool, PoolEvent
from .signals import stock_changed_on_commit

# Told to staff in the admin, in their language (translated when raised, in their request).
FIELD_FROZEN_WHEN_ACTIVE = _("“{label}” cannot be changed once the pool is launched.")
POOL_ALREADY_ACTIVE = _("The pool is already active.")
POOL_ALREADY_LAUNCHED = _("The pool has been launched already; it is {status}.")
STATUS_CHANGES_BY_LAUNCH_ONLY = _(
    "A pool's status changes only by launching, pausing, resuming or ending it."
)
PAUSE_NEEDS_ACTIVE = _("Only an active pool can be paused; this one is {status}.")
RESUME_NEEDS_PAUSED = _("Only a paused pool can be resumed; this one is {status}.")
END_NEEDS_LAUNCHED = _("Only an active or paused pool can be ended; this one is {status}.")
_SLUG_BASE_LENGTH = 50
# A pool ID suggested from a description keeps its first few telling words ("we created this
# pool because the CRM team asked for unique codes" → crm-team-unique): an ID is typed into other
# systems and becomes the template parameter, so a sentence makes a poor one. static/pools/
# pool_form.js applies the same rule while the manager types.
SLUG_WORDS = 3
SLUG_MAX_LENGTH = 30
_SKIPPED = (
    "a an and are as asked at be because by for from has have in into is it its need needed "
    "of on or our so that the their them these they this those to us was we were which who "
    "why will with want wanted you your created create pool pools"
)
SLUG_SKIPPED_WORDS = frozenset(_SKIPPED.split())


def campaign_create(*, name: str, description: str = "") -> Campaign:
    """Create a campaign."""
    campaign = Campaign(name=name.strip(), description=description.strip())
    campaign.full_clean()
    campaign.save()
    return campaign


def pool_create(*, campaign: Campaign, user=None, **fields) -> Pool:
    """Create a draft pool in `campaign`; the pool ID and template parameter are filled in if
    not given."""
    return pool_save(pool=Pool(campaign=campaign, **fields), user=user)


def pool_update(*, pool: Pool, user=None, **fields) -> Pool:
    """Change the given fields of `pool` and save it under the same rules as `pool_save`."""
    for name, value in fields.items():
        setattr(pool, name, value)
    return pool_save(pool=pool, user=user)


@transaction.atomic
def pool_save(*, pool: Pool, user=None) -> Pool:
    """Validate and save a new or edited pool.

    Fills in a blank pool ID (from the description, else from the campaign's name and a number)
    and a blank template parameter (from the pool ID). Once the pool is active, its pool ID,
    template parameter and multiple-use option are fixed. The status changes only through
    `pool_launch`.
    """
    pool.description = pool.description.strip()
    if pool.pk is None:
        if pool.status != Pool.Status.DRAFT:
            raise ValidationError({"status": STATUS_CHANGES_BY_LAUNCH_ONLY})
        pool.created_by = pool.created_by or user
    else:
        stored = Pool.objects.select_for_update().get(pk=pool.pk)
        if (pool.status, pool.launched_at) != (stored.status, stored.launched_at):
            raise ValidationError({"status": STATUS_CHANGES_BY_LAUNCH_ONLY})
        if stored.is_launched:
            frozen = {
                name: FIELD_FROZEN_WHEN_ACTIVE.format(label=Pool._meta.get_field(name).verbose_name)
                for name in Pool.FROZEN_WHEN_ACTIVE
                if getattr(pool, name) != getattr(stored, name)
            }
            if frozen:
                raise ValidationError(frozen)
    if not pool.slug:
        pool.slug = pool_slug_suggestion(campaign=pool.campaign, description=pool.description)
    if not pool.template_parameter:
        base = template_parameter_from_slug(pool.slug)
        pool.template_parameter = _first_free(
            "template_parameter", _numbered(base, separator="_", first=None)
        )
    # A concurrent save could take a generated value between the check and the insert; the unique
    # constraints then refuse it, and the caller retries.
    pool.full_clean()
    pool.save()
    stock_changed_on_commit(pool)
    return pool


@transaction.atomic
def pool_launch(*, pool: Pool, user=None) -> Pool:
    """Make the saved state of `pool` active, recording when and by whom.

    Raises ValidationError, by field, when something stops the launch (no description).
    """
    stored = Pool.objects.select_for_update().get(pk=pool.pk)
    if stored.is_active:
        raise ValidationError(POOL_ALREADY_ACTIVE, code="already_active")
    if stored.is_launched:
        raise ValidationError(
            POOL_ALREADY_LAUNCHED.format(status=stored.get_status_display().lower()),
            code="already_launched",
        )
    blockers = stored.launch_blockers()
    if blockers:
        raise ValidationError(blockers)
    stored.status = Pool.Status.ACTIVE
    stored.launched_at = timezone.now()
    stored.launched_by = user
    stored.full_clean()
    stored.save(update_fields=["status", "launched_at", "launched_by", "updated_at"])
    PoolEvent.objects.create(
        pool=stored, action=PoolEvent.Action.LAUNCHED, user=user, at=stored.launched_at
    )
    pool.status, pool.launched_at, pool.launched_by = (
        stored.status,
        stored.launched_at,
        stored.launched_by,
    )
    stock_changed_on_commit(stored)
    return stored


def pool_pause(*, pool: Pool, user=None, reason: str = "") -> PoolEvent:
    """Pause an active pool: issuing, marking and redemption are refused with `pool_paused`
    until it is resumed. Takes effect for every caller once committed (issuing reads the pool's
    status in its own statement). Raises ValidationError when the pool is not active."""
    return _pool_transition(
        pool=pool,
        user=user,
        reason=reason,
        allowed=(Pool.Status.ACTIVE,),
        refused=PAUSE_NEEDS_ACTIVE,
        status=Pool.Status.PAUSED,
        action=PoolEvent.Action.PAUSED,
    )


def pool_resume(*, pool: Pool, user=None, reason: str = "") -> PoolEvent:
    """Make a paused pool active again. Raises ValidationError when it is not paused."""
    return _pool_transition(
        pool=pool,
        user=user,
        reason=reason,
        allowed=(Pool.Status.PAUSED,),
        refused=RESUME_NEEDS_PAUSED,
        status=Pool.Status.ACTIVE,
        action=PoolEvent.Action.RESUMED,
    )


def pool_end(*, pool: Pool, user=None, reason: str = "", stop_redemptions: bool = False):
    """End an active or paused pool, for good: it issues no more codes. Codes it issued can
    still be redeemed until their Available-till, unless `stop_redemptions`. Raises
    ValidationError when the pool is a draft or has ended already."""
    return _pool_transition(
        pool=pool,
        user=user,
        reason=reason,
        allowed=(Pool.Status.ACTIVE, Pool.Status.PAUSED),
        refused=END_NEEDS_LAUNCHED,
        status=Pool.Status.ENDED,
        action=PoolEvent.Action.ENDED_AND_STOPPED if stop_redemptions else PoolEvent.Action.ENDED,
        redemptions_stopped=stop_redemptions,
    )


@transaction.atomic
def _pool_transition(
    *, pool, user, reason, allowed, refused, status, action, redemptions_stopped=False
) -> PoolEvent:
    # The row lock orders concurrent transitions: the second one sees the first one's status.
    stored = Pool.objects.select_for_update().get(pk=pool.pk)
    if stored.status not in allowed:
        raise ValidationError(
            refused.format(status=stored.get_status_display().lower()), code="invalid_status"
        )
    stored.status = status
    stored.redemptions_stopped = redemptions_stopped
    stored.save(update_fields=["status", "redemptions_stopped", "updated_at"])
    event = PoolEvent.objects.create(
        pool=stored, action=action, user=user, reason=(reason or "").strip()
    )
    pool.status, pool.redemptions_stopped = stored.status, stored.redemptions_stopped
    # Alerts stop while a pool is paused or ended, and a resumed pool is checked again.
    stock_changed_on_commit(stored)
    return event


def pool_slug_suggestion(*, campaign: Campaign, description: str = "") -> str:
    """Return the pool ID a new pool of `campaign` would get if saved with a blank one."""
    return _first_free("slug", _slug_candidates(Pool(campaign=campaign, description=description)))


def template_parameter_from_slug(slug: str) -> str:
    """Return the template parameter suggested for a pool ID: SPRING_SALE for spring-sale.

    static/pools/pool_form.js makes the same suggestion while the user types.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", slug).upper()
    return name if name and not name[0].isdigit() else f"P_{name}"


def slug_from_description(description: str) -> str:
    """Return a short pool ID made of the description's first few telling words, or ""."""
    words = [w for w in slugify(description).split("-") if w]
    telling = [w for w in words if w not in SLUG_SKIPPED_WORDS] or words
    slug = ""
    for word in telling[:SLUG_WORDS]:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > SLUG_MAX_LENGTH:
            break
        slug = candidate
    return slug or (telling[0][:SLUG_MAX_LENGTH].strip("-_") if telling else "")


def pool_names_automatic(pool: Pool) -> set[str]:
    """Return which of the pool's names ("slug", "template_parameter") are what pool_save fills
    in for a blank one (from _slug_candidates and template_parameter_from_slug, numbered or
    not), so that the pool form keeps them following the description as it did before saving."""
    slug_bases = [
        slug_from_description(pool.description),
        slugify(pool.campaign.name)[:_SLUG_BASE_LENGTH].strip("-") or "pool",
    ]
    automatic = set()
    if any(re.fullmatch(rf"{re.escape(base)}(-\d+)?", pool.slug) for base in slug_bases if base):
        automatic.add("slug")
    parameter = re.escape(template_parameter_from_slug(pool.slug))
    if pool.slug and re.fullmatch(rf"{parameter}(_\d+)?", pool.template_parameter):
        automatic.add("template_parameter")
    return automatic


def _slug_candidates(pool: Pool) -> Iterator[str]:
    if pool.description:
        base = slug_from_description(pool.description)
        if base:
            return _numbered(base, separator="-", first=None)
    base = slugify(pool.campaign.name)[:_SLUG_BASE_LENGTH].strip("-") or "pool"
    return _numbered(base, separator="-", first=pool.campaign.pools.count() + 1)


def _numbered(base: str, *, separator: str, first: int | None) -> Iterator[str]:
    """Yield base (when `first` is None), then base-2, base-3, … (or from base-`first`)."""
    number = first or 2
    if first is None:
        yield base
    while True:
        yield f"{base}{separator}{number}"
        number += 1


def _first_free(field: str, candidates: Iterator[str]) -> str:
    return next(c for c in candidates if not Pool.objects.filter(**{field: c}).exists())
