"""Issuing in batches: a code to each of many customers, a few statements per batch."""

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from ..counters import counter_shard
from ..models import (
    Code,
    CodeIssue,
    Pool,
    PoolCounter,
)
from ..refusals import CodeRefused, Refusal
from ..signals import stock_changed_on_commit
from .issuing import (
    _CODE_ATTNAMES,
    _CODE_COLUMNS,
    _ISSUED_AT,
    ISSUABLE_NOW,
    _claim_code,
    _claim_start,
    _code_from_row,
    _key_lock,
    _nothing_claimed,
    _pool_and_fallback_ids,
    pool_fallback,
)
from .lookups import customer_clean

# Issuing in batches

# The most customers one batch takes: a 10,000-customer batch is one statement of about 0.3 s on
# PostgreSQL here, short enough that a concurrent single issue never waits long behind it.
BATCH_MAX = 10_000
BATCH_TOO_LARGE = f"Give at most {BATCH_MAX:,} customers in one batch."
BATCH_EMPTY = "Give at least one customer."
_KEY_MAX_LENGTH = CodeIssue._meta.get_field("idempotency_key").max_length


@dataclass
class IssuedCode:
    customer: str
    code: Code
    # Issued before, under the same key (a retry), or to the same customer (an assignment).
    again: bool = False

    @property
    def from_fallback(self) -> bool:
        return self.code.pool_id != self.asked_pool_id

    asked_pool_id: int = 0


@dataclass
class BatchOutcome:
    issued: list[IssuedCode]
    # Customers left without a code: the pool (and its fallback) ran out.
    short: list[str]


def batch_key(key: str, customer: str) -> str:
    """Return the idempotency key a batch under `key` records for `customer`: the batch key and
    the customer id, so that a single issue under "<key>:<customer>" is the same issue."""
    derived = f"{key}:{customer}"
    if len(derived) > _KEY_MAX_LENGTH:
        derived = "sha256:" + hashlib.sha256(derived.encode()).hexdigest()
    return derived


def code_issue_batch(
    *,
    pool: Pool,
    customers: list[str],
    idempotency_key: str = "",
    caller: str = "",
    once_per_customer: bool = False,
) -> BatchOutcome:
    """Issue a code to each of `customers` (each once, however often listed) and return the
    codes in the order asked, with the customers left without one if the pool ran dry.

    The batch has one idempotency key: each customer's issue is recorded under
    batch_key(key, customer), so a retry of the batch (or of a part of it) returns the same
    codes and issues only to the customers still without one. Every rule of code_issue holds:
    issue windows, pause and end (read by the claim itself), no code to two customers, and the
    fallback pool when this one runs dry. Raises CodeRefused when the pool cannot issue at all
    (not active, paused, ended), ValidationError for a bad customer id or batch size.

    With `once_per_customer` (an assignment), a customer who already holds a code of the pool
    (or of its fallback), issued under any key and not given back, gets that code again.
    """
    customers = list(dict.fromkeys(customer_clean(c) for c in customers))
    if not customers:
        raise ValidationError({"customers": BATCH_EMPTY})
    if len(customers) > BATCH_MAX:
        raise ValidationError({"customers": BATCH_TOO_LARGE})
    keys = {c: batch_key(idempotency_key, c) if idempotency_key else "" for c in customers}
    # Under a key the batch is one transaction: refused on a key (see _issue_many), it
    # issues nothing.
    with transaction.atomic() if idempotency_key else nullcontext():
        if idempotency_key and connection.vendor == "postgresql":
            # Batches under one key take turns, as code_issue's calls do (see _key_lock).
            _key_lock(pool, idempotency_key)
        held = codes_held(pool=pool, customers=customers) if once_per_customer else None
        return _issue_many(pool, customers, keys, caller, held=held)


def codes_held(*, pool: Pool, customers: list[str]) -> dict[str, Code]:
    """Return the code each of `customers` holds from the pool or its fallback (issued and
    not given back; the latest when there are several), by customer."""
    # By customer alone, the pools filtered here: given the pool too, the planner ANDs in the
    # pool's index entries, all of them, for every batch of an assignment.
    pool_ids = set(_pool_and_fallback_ids(pool))
    issues = (
        CodeIssue.objects.filter(customer__in=customers, released_at__isnull=True)
        .select_related("code__pool")
        .order_by("id")
    )
    return {issue.customer: issue.code for issue in issues if issue.pool_id in pool_ids}


def _issue_many(
    pool: Pool, customers: list[str], keys: dict[str, str], caller: str, *, held=None
) -> BatchOutcome:
    """Issue to each customer, recording keys[customer]; `held` (customer → Code) names codes
    the customers already hold, returned as they are."""
    found = dict(held or {})
    refused_by_key = False
    for _attempt in range(5):
        known = len(found)
        found.update(_issued_by_keys(pool, [keys[c] for c in customers if keys[c]], keys))
        if refused_by_key and len(found) == known:
            # The key that stopped the claim (committed by then) is not one of ours: it holds
            # an issue to someone else.
            break
        todo = [c for c in customers if c not in found]
        try:
            new, short = _claim_many(pool, todo, keys, caller)
            fallback_pool = pool_fallback(pool) if short else None
            if fallback_pool is not None:
                more, short = _claim_many(fallback_pool, short, keys, caller)
                new.update(more)
        except IntegrityError:
            # A concurrent call under the same keys won some customers: take theirs, go on.
            refused_by_key = True
            continue
        except OperationalError as error:
            # Two batches inside longer transactions (assignments) that wait on each other's
            # keys: PostgreSQL ends one claim, whose savepoint is rolled back; try again.
            if "deadlock" not in str(error):
                raise
            continue
        issued = [
            IssuedCode(c, new[c] if c in new else found[c], c not in new, pool.pk)
            for c in customers
            if c in new or c in found
        ]
        return BatchOutcome(issued=issued, short=short)
    raise CodeRefused(Refusal.KEY_REUSED)


def _issued_by_keys(pool: Pool, keys: list[str], by_customer: dict) -> dict[str, Code]:
    """Return the codes issued from the pool or its fallback under `keys` (by_customer:
    customer → key), by customer; an issue under a customer's key to someone else is not
    theirs (the claim then fails on the key, and the batch is refused as code_issue is)."""
    if not keys:
        return {}
    pool_ids = _pool_and_fallback_ids(pool)
    customer_of = {key: customer for customer, key in by_customer.items()}
    if connection.vendor != "postgresql":
        issues = CodeIssue.objects.filter(pool_id__in=pool_ids, idempotency_key__in=keys)
        return {
            i.customer: i.code
            for i in issues.select_related("code__pool")
            if customer_of[i.idempotency_key] == i.customer
        }
    # One probe of the customer index per key, the only plan this form leaves ("pool_id + 0"
    # keeps the pool's indexes out): any form the planner could answer from the pool's own
    # entries hung on the statistics, and for a pool they had not seen grow (a new one) it read
    # all its issues, once per batch or once per key (a batch at a quarter of its speed).
    columns = ", ".join(f"c.{column}" for column in _CODE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT w.e->>0, {columns} FROM json_array_elements(%s::json) AS w(e)
            CROSS JOIN LATERAL (
                SELECT code_id FROM {CodeIssue._meta.db_table}
                WHERE customer = w.e->>0 AND idempotency_key = w.e->>1 AND pool_id + 0 = ANY(%s)
                LIMIT 1
            ) i
            JOIN {Code._meta.db_table} c ON c.id = i.code_id
            """,
            [json.dumps([(customer_of[key], key) for key in keys]), pool_ids],
        )
        rows = cursor.fetchall()
    if not rows:
        return {}
    # The codes built from the rows, as the claim's are (_code_from_row), in the same query.
    pool_at = 1 + _CODE_ATTNAMES.index("pool_id")
    pools = Pool.objects.in_bulk({row[pool_at] for row in rows})
    db = connection.alias
    return {row[0]: _code_from_row(row[1:], pools[row[pool_at]], db) for row in rows}


def _claim_many(
    pool: Pool, customers: list[str], keys: dict[str, str], caller: str
) -> tuple[dict[str, Code], list[str]]:
    """Claim a code for each customer in `pool`; return the codes and the customers left over.
    Raises CodeRefused if the pool cannot issue; IntegrityError if a key was taken meanwhile."""
    if not customers:
        return {}, []
    if connection.vendor == "postgresql" and not pool.allow_multiple_use:
        with transaction.atomic() if connection.in_atomic_block else nullcontext():
            rows, alerts = _claim_many_postgresql(pool, customers, keys, caller)
        codes = {}
        db = connection.alias
        for row in rows:
            code = _code_from_row(row, pool, db)
            codes[code.issued_to] = code
        if not codes:
            refusal = _nothing_claimed(pool)
            if refusal.reason != Refusal.NO_CODES_LEFT:
                raise refusal
        if codes and alerts:
            stock_changed_on_commit(pool)
        return codes, [c for c in customers if c not in codes]
    # The generic path (SQLite, multiple-use pools): one claim per customer, in one transaction.
    codes = {}
    with transaction.atomic():
        for customer in customers:
            try:
                code = _claim_code(pool, customer)
            except CodeRefused as refused:
                if refused.reason != Refusal.NO_CODES_LEFT:
                    raise
                break
            CodeIssue.objects.create(
                pool=pool,
                code=code,
                customer=customer,
                idempotency_key=keys[customer],
                issued_by=caller,
            )
            codes[customer] = code
    if codes and not pool.allow_multiple_use:
        stock_changed_on_commit(pool)
    return codes, [c for c in customers if c not in codes]


def _claim_many_postgresql(
    pool: Pool, customers: list[str], keys: dict[str, str], caller: str
) -> tuple[list[tuple], bool]:
    """Claim len(customers) codes, hand the n-th to the n-th customer, record the issues and count
    them, in one statement (as _claim_code_postgresql does for one)."""
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
                WHERE c.id = picked.id
                RETURNING {columns}, wanted.key
            ), recorded AS (
                INSERT INTO {CodeIssue._meta.db_table}
                    (pool_id, code_id, customer, idempotency_key, marked, issued_at, issued_by,
                     released_key)
                SELECT pool_id, id, issued_to, key, false, %(now)s, %(caller)s, ''
                FROM claimed
            ), counted AS (
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
                # JSON rather than arrays: psycopg builds an array parameter in Python.
                "wanted": json.dumps([(c, keys[c]) for c in customers]),
                "count": len(customers),
                "pool": pool.pk,
                "now": now,
                "available": Code.Status.AVAILABLE,
                "issued": Code.Status.ISSUED,
                "caller": caller,
                "shard": counter_shard(),
                "start": start,
            },
        )
        # Each code's issued_at is `now`, set here rather than read back and parsed once per
        # code (a fifth of a batch's Python time).
        rows = [(*row[:_ISSUED_AT], now, *row[_ISSUED_AT + 1 :]) for row in cursor.fetchall()]
    if rows:
        _claim_start[pool.pk] = max(row[0] for row in rows) + 1
    if len(rows) < len(customers) and start:
        # Short after the starting point: the rest from the first code (see _claim_start).
        _claim_start.pop(pool.pk, None)
        done = {row[_CODE_ATTNAMES.index("issued_to")] for row in rows}
        more, alerts = _claim_many_postgresql(
            pool, [c for c in customers if c not in done], keys, caller
        )
        return [row[:-1] for row in rows] + more, bool(alerts or (rows and rows[0][-1]))
    return [row[:-1] for row in rows], bool(rows and rows[0][-1])
