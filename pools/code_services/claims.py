"""The claim of codes: the one statement that takes issuable codes of a pool for customers,
records their issues and counts them, for every path that hands out codes (a single issue, a
batch, an assignment's slice); and the one place where a claim announces the stock change.

On PostgreSQL, for single-use codes, a claim of n codes is one statement (a single issue is its
n = 1 case); elsewhere, and for multiple-use codes, one claim per customer.
"""

import json

from django.db import connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from ..counters import counter_shard, pool_counts_add
from ..metrics import code_event
from ..models import Code, CodeIssue, Pool, PoolCounter
from ..refusals import CodeRefused, Refusal
from ..selectors import pool_stock
from ..signals import stock_changed_on_commit

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
# take. Two lanes of an assignment claim beside each other: the start only moves on.
_claim_start: dict[int, int] = {}

_CODE_COLUMNS = [field.column for field in Code._meta.concrete_fields]
_CODE_ATTNAMES = [field.attname for field in Code._meta.concrete_fields]
_ISSUED_AT = _CODE_ATTNAMES.index("issued_at")
_ISSUED_TO = _CODE_ATTNAMES.index("issued_to")


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


def pool_and_fallback_ids(pool: Pool) -> list[int]:
    """Return the ids of the pool and of its fallback pool (read from its row now)."""
    # The ids as values, read first: with a subquery (pool = X OR pool IN (SELECT …)) the
    # planner cannot use the (pool, key) index by its first column and reads all of it (an
    # assignment of 1,000,000 customers slowed down batch after batch).
    fallback = Pool.objects.filter(pk=pool.pk).values_list("fallback_pool_id", flat=True).first()
    return [pool.pk, fallback] if fallback else [pool.pk]


def nothing_claimed(pool: Pool) -> CodeRefused:
    """Return why a claim found no code: the pool's status, or no code left."""
    status = Pool.objects.filter(pk=pool.pk).values_list("status", flat=True).first()
    return CodeRefused(Pool(status=status).issue_refusal() or Refusal.NO_CODES_LEFT)


def codes_claim(
    *, pool: Pool, wanted: list[tuple[str, str]], caller: str, shard: int | None = None
) -> dict[str, Code]:
    """Claim a code of the pool for each (customer, idempotency key) of `wanted`, in order,
    record the issues and count them; return the codes claimed by customer (fewer when the
    pool runs dry, none when it is not active: ask nothing_claimed why).

    Every claim of codes goes through here: it is the one place that announces the stock
    change (stock_changed, after commit). `shard` is the counter row to add to (an
    assignment's lane keeps its own, so that two slices in flight never wait for each other's
    row). Raises IntegrityError when a key is taken meanwhile; inside a transaction only the
    claim's savepoint is rolled back.
    """
    if not wanted:
        return {}
    if connection.vendor == "postgresql" and not pool.allow_multiple_use:
        with transaction.atomic() if connection.in_atomic_block else _autocommit():
            rows, alerts = _claim_postgresql(pool, wanted, caller, shard)
            db = connection.alias
            codes = {row[_ISSUED_TO]: _code_from_row(row, pool, db) for row in rows}
            if codes:
                code_event(pool, "issued", len(codes))
            if codes and alerts:
                # Told when the pool alerts on low stock or refills (the check reads its few
                # counter rows): an issue from a pool that watches nothing skips the check's
                # three queries.
                stock_changed_on_commit(pool)
        return codes
    # The generic path (SQLite, multiple-use pools): one claim per customer, in one transaction.
    codes = {}
    with transaction.atomic():
        for customer, key in wanted:
            try:
                code = _claim_code(pool, customer)
            except CodeRefused:
                break  # dry, or not active: the caller asks nothing_claimed why
            CodeIssue.objects.create(
                pool=pool, code=code, customer=customer, idempotency_key=key, issued_by=caller
            )
            codes[customer] = code
        if codes:
            code_event(pool, "issued", len(codes))
        # Handing out a multiple-use code leaves the stock as it was.
        if codes and not pool.allow_multiple_use:
            stock_changed_on_commit(pool)
    return codes


class _autocommit:
    """No transaction: the claim's one statement commits on its own (and an announcement made
    after it is sent at once)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _claim_postgresql(
    pool: Pool, wanted: list[tuple[str, str]], caller: str, shard: int | None
) -> tuple[list[tuple], bool]:
    """Claim len(wanted) codes, hand the n-th to the n-th customer, record the issues and
    count them, in one statement: one round trip and one commit, which is what issuing under
    load costs. Return the codes' rows and whether the pool alerts on low stock or refills
    (read from its row now, not from `pool`)."""
    code_table = connection.ops.quote_name(Code._meta.db_table)
    counter_table = PoolCounter._meta.db_table
    start = _claim_start.get(pool.pk, 0)
    columns = ", ".join(f"c.{column}" for column in _CODE_COLUMNS)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH wanted AS (
                SELECT e->>0 AS customer, e->>1 AS key, n
                FROM json_array_elements(%(wanted)s::json) WITH ORDINALITY AS w(e, n)
            ), picked AS (
                SELECT id, row_number() OVER (ORDER BY id) AS n FROM (
                    SELECT id FROM {code_table} WHERE pool_id = %(pool)s AND {ISSUABLE_NOW}
                    AND id >= %(start)s
                    ORDER BY id LIMIT %(count)s FOR UPDATE SKIP LOCKED
                ) free
            ), claimed AS (
                UPDATE {code_table} c SET status = %(issued)s, issued_to = wanted.customer,
                    issued_at = %(now)s
                FROM picked JOIN wanted USING (n)
                -- The id range: the codes follow the start, so that the planner reads them
                -- by primary key rather than joining on an estimate.
                WHERE c.id = picked.id AND c.id >= %(start)s
                RETURNING {columns}, wanted.key
            ), recorded AS (
                INSERT INTO {CodeIssue._meta.db_table}
                    (pool_id, code_id, customer, idempotency_key, marked, issued_at, issued_by,
                     released_key)
                SELECT pool_id, id, issued_to, key, false, %(now)s, %(caller)s, ''
                FROM claimed
            ), counted AS (
                -- pool_counts_add's upsert, inlined so that all of this is one statement
                INSERT INTO {counter_table} (pool_id, shard, available, issued, redeemed)
                SELECT %(pool)s, %(shard)s, -count(*), count(*), 0 FROM claimed
                HAVING count(*) > 0
                ON CONFLICT (pool_id, shard) DO UPDATE SET
                    available = {counter_table}.available + excluded.available,
                    issued = {counter_table}.issued + excluded.issued
            )
            SELECT {", ".join("NULL" if c == "issued_at" else c for c in _CODE_COLUMNS)},
                (SELECT notify_below_enabled OR refill_below IS NOT NULL
                    FROM {Pool._meta.db_table} WHERE id = %(pool)s)
            FROM claimed
            """,
            {
                # JSON rather than arrays: psycopg builds an array parameter in Python,
                # element by element (7 ms for 5,000 ids, 2 as JSON).
                "wanted": json.dumps(wanted),
                "count": len(wanted),
                "pool": pool.pk,
                "now": now,
                "available": Code.Status.AVAILABLE,
                "issued": Code.Status.ISSUED,
                "caller": caller,
                "shard": counter_shard() if shard is None else shard,
                "start": start,
            },
        )
        # Each code's issued_at is `now`, set here rather than read back and parsed once per
        # code (a fifth of a batch's Python time).
        rows = [(*row[:_ISSUED_AT], now, *row[_ISSUED_AT + 1 :]) for row in cursor.fetchall()]
    alerts = bool(rows and rows[0][-1])
    rows = [row[:-1] for row in rows]
    if rows:
        _claim_start[pool.pk] = max(_claim_start.get(pool.pk, 0), max(row[0] for row in rows) + 1)
    if len(rows) < len(wanted) and start:
        # Short after the starting point: the rest from the first code (released codes, codes
        # whose issue window opened, claims rolled back) before saying none is left.
        _claim_start.pop(pool.pk, None)
        done = {row[_ISSUED_TO] for row in rows}
        more, more_alerts = _claim_postgresql(
            pool, [w for w in wanted if w[0] not in done], caller, shard
        )
        return rows + more, alerts or more_alerts
    return rows, alerts


def _claim_code(pool: Pool, customer: str) -> Code:
    """Claim one code for `customer` (the generic form: SQLite, multiple-use pools) and count
    it; the caller records the issue. Raises CodeRefused."""
    table = connection.ops.quote_name(Code._meta.db_table)
    # Adapted as the ORM adapts it: SQLite compares datetimes as text, and a raw parameter
    # would be written unlike the stored values ("T" for " "), so that a code whose window
    # ends at this very moment would be left out.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = {
        "pool": pool.pk,
        "now": now,
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
        raise nothing_claimed(pool)
    if not pool.allow_multiple_use:
        pool_counts_add(pool_id=pool.pk, available=-1, issued=1)
    return Code.objects.select_related("pool").get(pk=row[0])


def issue_room(pool: Pool) -> int | None:
    """Return how many codes the pool can issue before its stock falls below a level it
    watches (its low-stock alert's threshold or its refill level), or None if no such level
    lies ahead.

    A bulk issue (a batch, an assignment) that would take the stock across a level commits
    the codes up to the crossing first, and the rest after: the low-stock alert (or the
    refill) then starts when the stock crosses the level, as it does for single issues,
    rather than when the whole batch or slice has committed (an assignment of 5,000 customers
    from a pool alerting below 500 alerted at 0 left: its one slice took the stock from above
    500 to 0 in one commit). Cheap: the pool's counter rows, read only when it watches a level.
    """
    watched = (
        Pool.objects.filter(pk=pool.pk)
        .values_list("notify_below_enabled", "notify_below", "refill_below")
        .first()
    )
    if watched is None:
        return None
    enabled, notify_below, refill_below = watched
    levels = [level for level in (notify_below if enabled else None, refill_below) if level]
    if not levels:
        return None
    stock = pool_stock(pool=pool)
    ahead = [stock - level + 1 for level in levels if stock >= level]
    return min(ahead) if ahead else None
