"""Issuing single codes: the claim of a code for a customer (one statement on PostgreSQL), the
idempotency key, the fallback pool; and giving an issued code back (release)."""

from contextlib import nullcontext

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.db.models.base import ModelState
from django.utils import timezone

from ..counters import counter_shard, pool_counts_add
from ..models import (
    Code,
    CodeIssue,
    Pool,
    PoolCounter,
)
from ..refusals import CodeRefused, Refusal
from ..signals import stock_changed_on_commit
from .lookups import _find_code, customer_clean


def code_issue(
    *,
    pool: Pool,
    customer: str,
    idempotency_key: str = "",
    caller: str = "",
    fallback: bool = True,
) -> Code:
    """Hand an available code of an active pool to `customer` and return it.

    The code's issue window (Issue-start/-end) must contain now and it must not have expired.
    With an idempotency key (a message id, say), a retry returns the code already issued for it.
    In a multiple-use pool the code is handed out without being used up. Concurrent callers
    never get the same single-use code: the claim skips rows other transactions have locked.
    `caller` (an API key's prefix) is recorded as the code's issuer. When the pool has no
    issuable code and names a fallback pool, the code comes from the fallback (its `pool` says
    so). Raises CodeRefused.
    """
    customer = customer_clean(customer)
    if idempotency_key:
        # A retry returns what was issued under the key, even once the pool is paused or ended:
        # it hands out nothing new.
        issued = _issue_by_key(pool, idempotency_key, customer)
        if issued:
            return issued
        if fallback and connection.vendor == "postgresql":
            with transaction.atomic():
                _key_lock(pool, idempotency_key)
                # Again under the lock: a call that held it has committed its issue by now.
                issued = _issue_by_key(pool, idempotency_key, customer)
                return issued or _code_issue_or_fallback(
                    pool, customer, idempotency_key, caller, fallback
                )
    return _code_issue_or_fallback(pool, customer, idempotency_key, caller, fallback)


def _key_lock(pool: Pool, key: str) -> None:
    """Hold (until the transaction ends) the lock of issuing under `key` in the pool asked.

    The key's unique constraint is per pool of the code, so two concurrent calls under one key,
    one taking the pool's last code and the other finding it dry and taking from the fallback,
    would both issue; a key asked of a pool issues one code across the pool and its fallback
    only if such calls take turns."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"issue:{pool.pk}:{key}"]
        )


def _code_issue_or_fallback(
    pool: Pool, customer: str, idempotency_key: str, caller: str, fallback: bool
) -> Code:
    try:
        return _code_issue_here(pool, customer, idempotency_key, caller)
    except CodeRefused as refused:
        fallback_pool = pool_fallback(pool) if fallback else None
        if refused.reason != Refusal.NO_CODES_LEFT or fallback_pool is None:
            raise
    return code_issue(
        pool=fallback_pool,
        customer=customer,
        idempotency_key=idempotency_key,
        caller=caller,
        fallback=False,
    )


def pool_fallback(pool: Pool) -> Pool | None:
    """Return the pool's fallback pool (read from its row now), or None."""
    fallback_id = Pool.objects.filter(pk=pool.pk).values_list("fallback_pool_id", flat=True).first()
    return Pool.objects.filter(pk=fallback_id).first() if fallback_id else None


def _code_issue_here(pool: Pool, customer: str, idempotency_key: str, caller: str) -> Code:
    # The pool's status is read by the claim itself, from its row, so that a pause takes effect
    # at once whatever the caller holds in memory (the API caches pools).
    try:
        if connection.vendor == "postgresql" and not pool.allow_multiple_use:
            # One statement commits on its own; inside a caller's transaction a savepoint keeps
            # that transaction usable if the key turns out to be taken.
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                code, alerts = _claim_code_postgresql(pool, customer, idempotency_key, caller)
        else:
            with transaction.atomic():
                code = _claim_code(pool, customer)
                CodeIssue.objects.create(
                    pool=pool,
                    code=code,
                    customer=customer,
                    idempotency_key=idempotency_key,
                    issued_by=caller,
                )
            # Handing out a multiple-use code leaves the stock as it was.
            alerts = not pool.allow_multiple_use
    except IntegrityError:
        # A concurrent call with the same key won; this one's claim was rolled back.
        issued = _issue_by_key(pool, idempotency_key, customer) if idempotency_key else None
        if issued is None:
            raise
        return issued
    if alerts:
        # Only issuing lowers the stock; the check reads the pool's few counter rows.
        stock_changed_on_commit(pool)
    return code


def _nothing_claimed(pool: Pool) -> CodeRefused:
    """Return why a claim found no code: the pool's status, or no code left."""
    status = Pool.objects.filter(pk=pool.pk).values_list("status", flat=True).first()
    return CodeRefused(Pool(status=status).issue_refusal() or Refusal.NO_CODES_LEFT)


def _issue_by_key(pool: Pool, key: str, customer: str) -> Code | None:
    # In the pool or in its fallback: a retry of an issue that fell back returns that code.
    issue = (
        CodeIssue.objects.filter(_in_pool_or_fallback(pool), idempotency_key=key)
        .select_related("code__pool")
        .first()
    )
    if issue is None:
        return None
    if issue.customer != customer:
        raise CodeRefused(Refusal.KEY_REUSED)
    return issue.code


def _pool_and_fallback_ids(pool: Pool) -> list[int]:
    # The ids as values, read first: with a subquery (pool = X OR pool IN (SELECT …)) the
    # planner cannot use the (pool, key) index by its first column and reads all of it (an
    # assignment of 1,000,000 customers slowed down batch after batch).
    fallback = Pool.objects.filter(pk=pool.pk).values_list("fallback_pool_id", flat=True).first()
    return [pool.pk, fallback] if fallback else [pool.pk]


def _in_pool_or_fallback(pool: Pool) -> Q:
    return Q(pool_id__in=_pool_and_fallback_ids(pool))


ISSUABLE_NOW = (
    "status = %(available)s"
    " AND (issue_start IS NULL OR issue_start <= %(now)s)"
    " AND (issue_end IS NULL OR issue_end >= %(now)s)"
    " AND (available_till IS NULL OR available_till >= %(now)s)"
    # Uncorrelated: evaluated once per statement, one primary-key read.
    f" AND EXISTS (SELECT 1 FROM {Pool._meta.db_table}"
    f" WHERE id = %(pool)s AND status = '{Pool.Status.ACTIVE}')"
)


# Where this process's next claim in a pool starts looking: after the last code it claimed.
# Claims go in id order, so the codes before that are issued; their index entries under
# "available" stay until vacuum, and a claim from the first code would walk past every one of
# them (measured with 8 clients: 1,112 issues/s in the first 10 s, 319/s by the sixtieth
# second). A claim that finds nothing after its starting point looks again from the first code,
# so no issuable code is ever missed: this changes where a claim looks first, not what it may
# take.
_claim_start: dict[int, int] = {}

_CODE_COLUMNS = [field.column for field in Code._meta.concrete_fields]
_CODE_ATTNAMES = [field.attname for field in Code._meta.concrete_fields]
_ISSUED_AT = _CODE_ATTNAMES.index("issued_at")


def _code_from_row(row, pool: Pool, db: str) -> Code:
    """Return the Code of a row of _CODE_COLUMNS, its pool set. As Code.from_db, without
    Model.__init__'s work per field and the pool descriptor's checks: over half of a batch's
    Python time (1,000 codes), for codes read whole from the database."""
    code = Code.__new__(Code)
    code.__dict__.update(zip(_CODE_ATTNAMES, row, strict=True))
    code._state = ModelState()
    code._state.adding = False
    code._state.db = db
    code._state.fields_cache["pool"] = pool
    return code


def _claim_code_postgresql(
    pool: Pool, customer: str, idempotency_key: str, caller: str
) -> tuple[Code, bool]:
    """Claim a code of an active pool, record the issue and count it in one statement: one
    round trip and one commit, which is what issuing under load costs. Return the code and
    whether the pool alerts on low stock or refills (read from its row now, not from `pool`)."""
    code_table = connection.ops.quote_name(Code._meta.db_table)
    columns = ", ".join(_CODE_COLUMNS)
    start = _claim_start.get(pool.pk, 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH claimed AS (
                UPDATE {code_table} SET status = %(issued)s, issued_to = %(customer)s,
                    issued_at = %(now)s
                WHERE id = (
                    SELECT id FROM {code_table} WHERE pool_id = %(pool)s AND {ISSUABLE_NOW}
                    AND id >= %(start)s
                    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                )
                RETURNING {columns}
            ), recorded AS (
                INSERT INTO {CodeIssue._meta.db_table}
                    (pool_id, code_id, customer, idempotency_key, marked, issued_at, issued_by)
                SELECT pool_id, id, %(customer)s, %(key)s, false, %(now)s, %(caller)s
                FROM claimed
            ), counted AS (
                -- pool_counts_add's upsert, inlined so that all of this is one statement
                INSERT INTO {PoolCounter._meta.db_table}
                    (pool_id, shard, available, issued, redeemed)
                SELECT pool_id, %(shard)s, -1, 1, 0 FROM claimed
                ON CONFLICT (pool_id, shard) DO UPDATE SET
                    available = {PoolCounter._meta.db_table}.available - 1,
                    issued = {PoolCounter._meta.db_table}.issued + 1
            )
            SELECT {columns},
                (SELECT notify_below_enabled OR refill_below IS NOT NULL
                    FROM {Pool._meta.db_table} WHERE id = %(pool)s)
            FROM claimed
            """,
            {
                "pool": pool.pk,
                "now": timezone.now(),
                "available": Code.Status.AVAILABLE,
                "issued": Code.Status.ISSUED,
                "customer": customer,
                "key": idempotency_key,
                "caller": caller,
                "shard": counter_shard(),
                "start": start,
            },
        )
        row = cursor.fetchone()
    if row is None:
        if start:
            # Nothing after the starting point: look from the first code (released codes,
            # codes whose issue window opened, claims rolled back) before saying none is left.
            _claim_start.pop(pool.pk, None)
            return _claim_code_postgresql(pool, customer, idempotency_key, caller)
        raise _nothing_claimed(pool)
    code = Code.from_db(connection.alias, _CODE_ATTNAMES, row[:-1])
    _claim_start[pool.pk] = code.pk + 1
    code.pool = pool
    return code, row[-1]


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
        f"SELECT id FROM {table} WHERE pool_id = %(pool)s AND {ISSUABLE_NOW} ORDER BY id LIMIT 1"
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
        raise _nothing_claimed(pool)
    if not pool.allow_multiple_use:
        pool_counts_add(pool_id=pool.pk, available=-1, issued=1)
    return Code.objects.select_related("pool").get(pk=row[0])


# Giving codes back (issue 15)


@transaction.atomic
def code_release(*, pool: Pool, code: str, idempotency_key: str) -> Code:
    """Give an issued code back to stock, when its message was never delivered, and return it.

    Only a code not redeemed, and only by whoever issued it: the idempotency key it was issued
    under (for a batch: batch_key(key, customer); for an assignment, the key its report
    names). The code's row is locked, as redemption locks it, so a release and
    a redemption of the same code never both succeed. The issue stays in the code's history,
    marked released, and its key is freed: a retry under it issues anew. Raises CodeRefused.
    """
    key = (idempotency_key or "").strip()
    found = _find_code(code, pool, lock=True)
    issue = None
    if key:
        issue = (
            CodeIssue.objects.filter(code=found, idempotency_key=key, released_at__isnull=True)
            .order_by("-id")
            .first()
        )
    if issue is None:
        # Without the right key the code answers as if it did not exist, as check does.
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    if found.status == Code.Status.REDEEMED or found.times_redeemed:
        raise CodeRefused(Refusal.ALREADY_REDEEMED)
    if found.status != Code.Status.ISSUED and not found.pool.allow_multiple_use:
        raise CodeRefused(Refusal.NOT_RELEASABLE)
    now = timezone.now()
    CodeIssue.objects.filter(pk=issue.pk).update(
        released_at=now, released_key=issue.idempotency_key, idempotency_key=""
    )
    if not found.pool.allow_multiple_use:
        found.status, found.issued_to, found.issued_at = Code.Status.AVAILABLE, "", None
        found.save(update_fields=["status", "issued_to", "issued_at"])
        pool_counts_add(pool_id=found.pool_id, available=1, issued=-1)
        stock_changed_on_commit(found.pool)
    return found
