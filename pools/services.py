"""Writes and state transitions of campaigns and pools.

The admin, the Django shell, the HTTP API and Celery tasks all call these, so a rule holds in every
one of them or in none.
"""

import random
import re
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.text import slugify

from .models import CUSTOMER_MAX_LENGTH, Campaign, Code, CodeIssue, Pool, PoolCounter, Redemption
from .signals import stock_changed

FIELD_FROZEN_WHEN_ACTIVE = "“{label}” cannot be changed once the pool is launched."
POOL_ALREADY_ACTIVE = "The pool is already active."
STATUS_CHANGES_BY_LAUNCH_ONLY = "A pool's status changes only by launching it."

# Rows per pool over which code counts are spread; see PoolCounter.
COUNTER_SHARDS = 8
_SLUG_BASE_LENGTH = 50


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
        if stored.is_active:
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
    transaction.on_commit(lambda: stock_changed.send(sender=Pool, pool=pool))
    return pool


@transaction.atomic
def pool_launch(*, pool: Pool, user=None) -> Pool:
    """Make the saved state of `pool` active, recording when and by whom.

    Raises ValidationError, by field, when something stops the launch (no description).
    """
    stored = Pool.objects.select_for_update().get(pk=pool.pk)
    if stored.is_active:
        raise ValidationError(POOL_ALREADY_ACTIVE, code="already_active")
    blockers = stored.launch_blockers()
    if blockers:
        raise ValidationError(blockers)
    stored.status = Pool.Status.ACTIVE
    stored.launched_at = timezone.now()
    stored.launched_by = user
    stored.full_clean()
    stored.save(update_fields=["status", "launched_at", "launched_by", "updated_at"])
    pool.status, pool.launched_at, pool.launched_by = (
        stored.status,
        stored.launched_at,
        stored.launched_by,
    )
    transaction.on_commit(lambda: stock_changed.send(sender=Pool, pool=stored))
    return stored


def pool_counts_add(
    *, pool_id: int, available: int = 0, issued: int = 0, redeemed: int = 0, expired: int = 0
):
    """Add the given deltas to a pool's code counts (one per code status, named like it),
    inside the caller's transaction.

    Call it in the same transaction as the change of codes it counts.
    """
    table = connection.ops.quote_name(PoolCounter._meta.db_table)
    # Django's upsert (bulk_create update_conflicts) can only overwrite, not add; both PostgreSQL
    # and SQLite accept this statement.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (pool_id, shard, available, issued, redeemed, expired) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (pool_id, shard) DO UPDATE SET "
            f"available = {table}.available + excluded.available, "
            f"issued = {table}.issued + excluded.issued, "
            f"redeemed = {table}.redeemed + excluded.redeemed, "
            f"expired = {table}.expired + excluded.expired",
            [pool_id, random.randrange(COUNTER_SHARDS), available, issued, redeemed, expired],
        )


def pool_slug_suggestion(*, campaign: Campaign, description: str = "") -> str:
    """Return the pool ID a new pool of `campaign` would get if saved with a blank one."""
    return _first_free("slug", _slug_candidates(Pool(campaign=campaign, description=description)))


def template_parameter_from_slug(slug: str) -> str:
    """Return the template parameter suggested for a pool ID: SPRING_SALE for spring-sale.

    static/pools/pool_form.js makes the same suggestion while the user types.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", slug).upper()
    return name if name and not name[0].isdigit() else f"P_{name}"


def _slug_candidates(pool: Pool) -> Iterator[str]:
    if pool.description:
        base = slugify(pool.description)[:_SLUG_BASE_LENGTH].strip("-")
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


# Issuing and redemption


class Refusal(models.TextChoices):
    """Why a code was not issued, checked or redeemed: stable codes for callers, and messages."""

    UNKNOWN_CODE = "unknown_code", "There is no such code."
    AMBIGUOUS_CODE = "ambiguous_code", "This code is in several pools: name the pool."
    POOL_NOT_ACTIVE = "pool_not_active", "The pool is not active."
    PROCESSED_EXTERNALLY = (
        "processed_externally",
        "Codes of this pool are redeemed by another system.",
    )
    NOT_YET_AVAILABLE = "not_yet_available", "The code cannot be used yet."
    EXPIRED = "expired", "The code has expired."
    ALREADY_REDEEMED = "already_redeemed", "The code has already been redeemed."
    NOT_ISSUED_TO_CUSTOMER = "not_issued_to_customer", "The code was not issued to this customer."
    VALIDITY_PERIOD_OVER = (
        "issue_validity_over",
        "The code's validity period after issue is over.",
    )
    NO_CODES_LEFT = "no_codes_left", "The pool has no code left to issue now."
    ALREADY_ISSUED = "already_issued", "The code was issued to another customer."
    KEY_REUSED = "idempotency_key_reused", "This idempotency key was used for another customer."


class CodeRefused(Exception):
    def __init__(self, reason: Refusal):
        super().__init__(reason.label)
        self.reason = reason


def pool_stock(*, pool: Pool) -> int:
    """Return how many codes of the pool can still be issued (its available codes).

    Read from the pool's counter rows: cheap enough to call after every issue.
    """
    return PoolCounter.objects.filter(pool=pool).aggregate(total=Sum("available"))["total"] or 0


def code_issue(*, pool: Pool, customer: str, idempotency_key: str = "") -> Code:
    """Hand an available code of an active pool to `customer` and return it.

    The code's issue window (Issue-start/-end) must contain now and it must not have expired.
    With an idempotency key (a message id, say), a retry returns the code already issued for it.
    In a multiple-use pool the code is handed out without being used up. Concurrent callers
    never get the same single-use code: the claim skips rows other transactions have locked.
    Raises CodeRefused.
    """
    customer = _clean_customer(customer)
    if idempotency_key:
        issued = _issue_by_key(pool, idempotency_key, customer)
        if issued:
            return issued
    # A pool's status only moves from draft to active, so an active pool in memory is active.
    if (
        not pool.is_active
        and not Pool.objects.filter(pk=pool.pk, status=Pool.Status.ACTIVE).exists()
    ):
        raise CodeRefused(Refusal.POOL_NOT_ACTIVE)
    try:
        if connection.vendor == "postgresql" and not pool.allow_multiple_use:
            # One statement commits on its own; inside a caller's transaction a savepoint keeps
            # that transaction usable if the key turns out to be taken.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                code = _claim_code_postgresql(pool, customer, idempotency_key)
        else:
            with transaction.atomic():
                code = _claim_code(pool, customer)
                CodeIssue.objects.create(
                    pool=pool, code=code, customer=customer, idempotency_key=idempotency_key
                )
    except IntegrityError:
        # A concurrent call with the same key won; this one's claim was rolled back.
        issued = _issue_by_key(pool, idempotency_key, customer) if idempotency_key else None
        if issued is None:
            raise
        return issued
    if pool.notify_below_enabled:
        # Only issuing lowers the stock; the check reads the pool's few counter rows.
        stock_changed.send(sender=Pool, pool=pool)
    return code


def _issue_by_key(pool: Pool, key: str, customer: str) -> Code | None:
    issue = CodeIssue.objects.filter(pool=pool, idempotency_key=key).select_related("code").first()
    if issue is None:
        return None
    if issue.customer != customer:
        raise CodeRefused(Refusal.KEY_REUSED)
    return issue.code


_ISSUABLE_NOW = (
    "status = %(available)s"
    " AND (issue_start IS NULL OR issue_start <= %(now)s)"
    " AND (issue_end IS NULL OR issue_end >= %(now)s)"
    " AND (available_till IS NULL OR available_till >= %(now)s)"
)


_CODE_COLUMNS = [field.column for field in Code._meta.concrete_fields]
_CODE_ATTNAMES = [field.attname for field in Code._meta.concrete_fields]


def _claim_code_postgresql(pool: Pool, customer: str, idempotency_key: str) -> Code:
    """Claim a code, record the issue and count it in one statement: one round trip and one
    commit, which is what issuing under load costs."""
    code_table = connection.ops.quote_name(Code._meta.db_table)
    columns = ", ".join(_CODE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {code_table} SET status = %(issued)s, issued_to = %(customer)s,
                    issued_at = %(now)s
                WHERE id = (
                    SELECT id FROM {code_table} WHERE pool_id = %(pool)s AND {_ISSUABLE_NOW}
                    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                )
                RETURNING {columns}
            ), recorded AS (
                INSERT INTO {CodeIssue._meta.db_table}
                    (pool_id, code_id, customer, idempotency_key, marked, issued_at)
                SELECT pool_id, id, %(customer)s, %(key)s, false, %(now)s FROM claimed
            ), counted AS (
                -- pool_counts_add's upsert, inlined so that all of this is one statement
                INSERT INTO {PoolCounter._meta.db_table}
                    (pool_id, shard, available, issued, redeemed)
                SELECT pool_id, %(shard)s, -1, 1, 0 FROM claimed
                ON CONFLICT (pool_id, shard) DO UPDATE SET
                    available = {PoolCounter._meta.db_table}.available - 1,
                    issued = {PoolCounter._meta.db_table}.issued + 1
            )
            SELECT {columns} FROM claimed
            """,
            {
                "pool": pool.pk,
                "now": timezone.now(),
                "available": Code.Status.AVAILABLE,
                "issued": Code.Status.ISSUED,
                "customer": customer,
                "key": idempotency_key,
                "shard": random.randrange(COUNTER_SHARDS),
            },
        )
        row = cursor.fetchone()
    if row is None:
        raise CodeRefused(Refusal.NO_CODES_LEFT)
    code = Code.from_db(connection.alias, _CODE_ATTNAMES, row)
    code.pool = pool
    return code


def _claim_code(pool: Pool, customer: str) -> Code:
    table = connection.ops.quote_name(Code._meta.db_table)
    params = {
        "pool": pool.pk,
        "now": timezone.now(),
        "available": Code.Status.AVAILABLE,
        "issued": Code.Status.ISSUED,
        "customer": customer,
    }
    first_issuable = (
        f"SELECT id FROM {table} WHERE pool_id = %(pool)s AND {_ISSUABLE_NOW} ORDER BY id LIMIT 1"
    )
    with connection.cursor() as cursor:
        if pool.allow_multiple_use:
            # Handing out a multiple-use code does not use it up: nothing to claim.
            cursor.execute(first_issuable, params)
        else:
            # One statement claims the first issuable code that no other transaction holds;
            # the (pool, status, id) index finds it without scanning used codes.
            if connection.features.has_select_for_update_skip_locked:
                first_issuable += " FOR UPDATE SKIP LOCKED"
            cursor.execute(
                f"UPDATE {table} SET status = %(issued)s, issued_to = %(customer)s, "
                f"issued_at = %(now)s WHERE id = ({first_issuable}) RETURNING id",
                params,
            )
        row = cursor.fetchone()
    if row is None:
        raise CodeRefused(Refusal.NO_CODES_LEFT)
    if not pool.allow_multiple_use:
        pool_counts_add(pool_id=pool.pk, available=-1, issued=1)
    return Code.objects.select_related("pool").get(pk=row[0])


CUSTOMER_REQUIRED = f"Give the customer's id (at most {CUSTOMER_MAX_LENGTH} characters)."


def _clean_customer(customer: str) -> str:
    customer = (customer or "").strip()
    if not customer or len(customer) > CUSTOMER_MAX_LENGTH:
        raise ValidationError({"customer": CUSTOMER_REQUIRED})
    return customer


def _find_code(code: str, pool: Pool | None, *, lock: bool) -> Code:
    """Return the code with this text (in `pool` if given), locked for the transaction."""
    queryset = Code.objects.filter(code=(code or "").strip()).select_related("pool")
    if pool is not None:
        queryset = queryset.filter(pool=pool)
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    found = list(queryset[:2])
    if not found:
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    if len(found) > 1:
        raise CodeRefused(Refusal.AMBIGUOUS_CODE)
    return found[0]


def code_refusal(code: Code, customer: str, at=None) -> Refusal | None:
    """Return why `customer` cannot redeem `code` now (or at `at`), or None if they can."""
    at = at or timezone.now()
    pool = code.pool
    if not pool.is_active:
        return Refusal.POOL_NOT_ACTIVE
    if pool.processing == Pool.Processing.EXTERNAL:
        return Refusal.PROCESSED_EXTERNALLY
    if code.available_from and at < code.available_from:
        return Refusal.NOT_YET_AVAILABLE
    if code.available_till and at > code.available_till:
        return Refusal.EXPIRED
    if code.status == Code.Status.REDEEMED:
        return Refusal.ALREADY_REDEEMED
    if pool.require_issue_before_redeem:
        if code.status != Code.Status.ISSUED or code.issued_to != customer:
            return Refusal.NOT_ISSUED_TO_CUSTOMER
        if code.issued_at + timedelta(days=pool.issued_validity_days) < at:
            return Refusal.VALIDITY_PERIOD_OVER
    return None


def code_check(*, code: str, customer: str, pool: Pool | None = None) -> Code:
    """Return the code if `customer` could redeem it now, without redeeming it.

    Raises CodeRefused with the reason otherwise.
    """
    customer = _clean_customer(customer)
    found = _find_code(code, pool, lock=False)
    refusal = code_refusal(found, customer)
    if refusal:
        raise CodeRefused(refusal)
    return found


@transaction.atomic
def code_redeem(
    *, code: str, customer: str, pool: Pool | None = None, order_reference: str = ""
) -> Redemption:
    """Redeem a code for `customer` under its pool's rules and return the redemption.

    Repeating a redemption with the same order reference returns the first one. A code string
    that is in several pools needs `pool`. The code's row is locked, so a single-use code is
    never redeemed twice however many callers try at once. Raises CodeRefused.
    """
    customer = _clean_customer(customer)
    found = _find_code(code, pool, lock=True)
    order_reference = order_reference.strip()
    if order_reference:
        previous = Redemption.objects.filter(code=found, order_reference=order_reference).first()
        if previous is not None:
            if previous.customer != customer:
                raise CodeRefused(Refusal.ALREADY_REDEEMED)
            return previous
    now = timezone.now()
    refusal = code_refusal(found, customer, now)
    if refusal:
        raise CodeRefused(refusal)
    redemption = Redemption.objects.create(
        code=found, customer=customer, order_reference=order_reference, redeemed_at=now
    )
    # The row is locked, so its values in memory are current.
    was = found.status
    found.redeemed_at = now
    found.times_redeemed += 1
    if not found.pool.allow_multiple_use:
        found.status = Code.Status.REDEEMED
    found.save(update_fields=["status", "redeemed_at", "times_redeemed"])
    if not found.pool.allow_multiple_use:
        # The counts are named like the statuses: the code leaves its old one.
        pool_counts_add(pool_id=found.pool_id, redeemed=1, **{was: -1})
    return redemption


@transaction.atomic
def code_mark_issued(*, code: str, customer: str, pool: Pool | None = None) -> Code:
    """Record that a code handed out elsewhere (printed, sent by another system) was issued
    to `customer`. Marking it again for the same customer changes nothing. Raises CodeRefused.
    """
    customer = _clean_customer(customer)
    found = _find_code(code, pool, lock=True)
    if not found.pool.is_active:
        raise CodeRefused(Refusal.POOL_NOT_ACTIVE)
    if not found.pool.allow_multiple_use:
        if found.status == Code.Status.ISSUED and found.issued_to == customer:
            return found
        if found.status == Code.Status.REDEEMED:
            raise CodeRefused(Refusal.ALREADY_REDEEMED)
        if found.status == Code.Status.ISSUED:
            raise CodeRefused(Refusal.ALREADY_ISSUED)
        was = found.status
        found.status, found.issued_to, found.issued_at = (
            Code.Status.ISSUED,
            customer,
            timezone.now(),
        )
        found.save(update_fields=["status", "issued_to", "issued_at"])
        pool_counts_add(pool_id=found.pool_id, issued=1, **{was: -1})
    elif CodeIssue.objects.filter(code=found, customer=customer).exists():
        return found
    CodeIssue.objects.create(pool=found.pool, code=found, customer=customer, marked=True)
    return found


def codes_expire(*, at=None) -> dict[int, int]:
    """Mark available codes that can no longer be issued (past Issue-end or Available-till) as
    expired, so that they leave the stock; return how many per pool.

    Run periodically by the beat task: expiry lowers stock without anyone issuing.
    """
    at = at or timezone.now()
    expired = {}
    for pool_id in Pool.objects.values_list("pk", flat=True):
        with transaction.atomic():
            count = (
                Code.objects.filter(pool_id=pool_id, status=Code.Status.AVAILABLE)
                .filter(Q(issue_end__lt=at) | Q(available_till__lt=at))
                .update(status=Code.Status.EXPIRED)
            )
            if count:
                pool_counts_add(pool_id=pool_id, available=-count, expired=count)
                expired[pool_id] = count
    return expired
