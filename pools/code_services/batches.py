"""Issuing in batches: a code to each of many customers, a few statements per batch."""

import json
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils.formats import number_format
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from ..models import Code, CodeIssue, Pool
from ..refusals import CodeRefused, Refusal
from .claims import (
    _CODE_COLUMNS,
    codes_claim,
    issue_room,
    nothing_claimed,
    pool_and_fallback_ids,
)
from .holdings import codes_of_rows, customer_holdings, issues_retire, sort_out
from .issuing import _key_lock, pool_fallback
from .lookups import bounded_key, customer_clean

# Issuing in batches

# The most customers one batch takes: a 10,000-customer batch is one statement of about 0.3 s on
# PostgreSQL here, short enough that a concurrent single issue never waits long behind it.
BATCH_MAX = 10_000
# Read by API callers (in English) and by staff (translated in their request).
BATCH_TOO_LARGE = format_lazy(
    _("Give at most {count} customers in one batch."),
    count=lazy(lambda: number_format(BATCH_MAX, force_grouping=True), str)(),
)
BATCH_EMPTY = _("Give at least one customer.")


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
    # Once per customer: those whose code was dead (withdrawn, expired, redeemed by someone
    # else) and who got a fresh one, and those who redeemed theirs and got nothing.
    replaced: list[str] = field(default_factory=list)
    redeemed: list[str] = field(default_factory=list)


def batch_key(key: str, customer: str) -> str:
    """Return the idempotency key a batch under `key` records for `customer`: the batch key and
    the customer id, so that a single issue under "<key>:<customer>" is the same issue."""
    return bounded_key(f"{key}:{customer}")


def api_key_namespace(prefix: str, key: str) -> str:
    """Return the idempotency key an issue over the API records for `key` sent with the API key
    of `prefix`: each API key has its own keys, so no key can reach the issues of another (or
    an assignment's, recorded under "assignment:<customer>"). A batch's keys derive from its
    namespaced key, so api_key_namespace(p, "<batch key>:<customer>") names a batch's issue.
    Not shortened here: the services store a key too long for its column as its hash
    (bounded_key), the same for a single issue, a batch's customer and a release."""
    return f"api:{prefix}:{key}" if key else ""


def code_issue_batch(
    *,
    pool: Pool,
    customers: list[str],
    idempotency_key: str = "",
    caller: str = "",
    once_per_customer: bool = False,
    fallback: bool = True,
) -> BatchOutcome:
    """Issue a code to each of `customers` (each once, however often listed) and return the
    codes in the order asked, with the customers left without one if the pool ran dry.

    The batch has one idempotency key: each customer's issue is recorded under
    batch_key(key, customer), so a retry of the batch (or of a part of it) returns the same
    codes and issues only to the customers still without one (a fresh code to those whose
    code was since withdrawn or expired). Every rule of code_issue holds: issue windows, pause
    and end (read by the claim itself), no code to two customers, and the fallback pool when
    this one runs dry. Raises CodeRefused when the pool cannot issue at all (not active,
    paused, ended), ValidationError for a bad customer id or batch size.

    With `once_per_customer` (an assignment), a customer who holds a code of the pool (or of
    its fallback) gets that code again; see holdings.py for what "holds" means.

    A batch that would take the stock below a level the pool watches (its low-stock alert,
    its refill) is issued in two parts, the first up to the crossing, each in its own
    transaction: the alert starts at the crossing, not once the whole batch is in (see
    issue_room). Under a key, a refusal on a key then leaves the first part issued; a retry
    returns it.
    """
    customers = list(dict.fromkeys(customer_clean(c) for c in customers))
    if not customers:
        raise ValidationError({"customers": BATCH_EMPTY})
    if len(customers) > BATCH_MAX:
        raise ValidationError({"customers": BATCH_TOO_LARGE})
    room = issue_room(pool) if not connection.in_atomic_block else None
    if room is not None and room < len(customers):
        parts = [customers[:room], customers[room:]]
    else:
        parts = [customers]
    outcome = BatchOutcome(issued=[], short=[])
    for part in parts:
        done = _batch(pool, part, idempotency_key, caller, once_per_customer, fallback)
        outcome.issued += done.issued
        outcome.short += done.short
        outcome.replaced += done.replaced
        outcome.redeemed += done.redeemed
    return outcome


def _batch(pool, customers, idempotency_key, caller, once_per_customer, fallback) -> BatchOutcome:
    keys = {c: batch_key(idempotency_key, c) if idempotency_key else "" for c in customers}
    # Under a key the batch is one transaction: refused on a key (see codes_issue_many), it
    # issues nothing.
    with transaction.atomic() if idempotency_key else nullcontext():
        if idempotency_key and connection.vendor == "postgresql":
            # Batches under one key take turns, as code_issue's calls do (see _key_lock).
            _key_lock(pool, idempotency_key)
        return codes_issue_many(
            pool=pool,
            customers=customers,
            keys=keys,
            caller=caller,
            once_per_customer=once_per_customer,
            fallback=fallback,
        )


def codes_issue_many(
    *,
    pool: Pool,
    customers: list[str],
    keys: dict[str, str],
    caller: str,
    once_per_customer: bool = False,
    shard: int | None = None,
    fallback: bool = True,
) -> BatchOutcome:
    """Issue to each of `customers` (distinct, cleaned), recording keys[customer]: the core
    of batches and assignments, inside the caller's transaction if any.

    A customer whose key already names a live code of theirs gets it again; with
    `once_per_customer`, so does a customer who holds one under any key (holdings.py), and a
    customer who redeemed theirs gets nothing. The others get a code of the pool, then of
    its fallback (a fallback that refuses, paused or ended, is as one run dry: its customers
    are short; `fallback` False: no fallback). `shard`: the counter row to add to (see
    codes_claim). Raises CodeRefused if
    the pool itself cannot issue, or on a key held by someone else."""
    found: dict[str, Code] = {}
    redeemed: dict[str, Code] = {}
    dead: set[str] = set()
    refused_by_key = False
    for _attempt in range(5):
        known = len(found)
        asked = [c for c in customers if c not in found and c not in redeemed]
        if once_per_customer:
            held = customer_holdings(pool=pool, customers=asked)
            issues_retire([issue for issues in held.dead.values() for issue in issues])
            found.update(held.live)
            redeemed.update(held.redeemed)
            dead.update(held.dead)
        else:
            found.update(_issued_by_keys(pool, [keys[c] for c in asked if keys[c]], keys))
        if refused_by_key and len(found) == known:
            # The key that stopped the claim (committed by then) is not one of ours: it holds
            # an issue to someone else.
            break
        todo = [c for c in customers if c not in found and c not in redeemed]
        try:
            new, short = _claim_many(pool, todo, keys, caller, shard)
            fallback_pool = pool_fallback(pool) if short and fallback else None
            if fallback_pool is not None:
                try:
                    more, short = _claim_many(fallback_pool, short, keys, caller, shard)
                except CodeRefused:
                    more = {}
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
        return BatchOutcome(
            issued=issued,
            short=short,
            replaced=[c for c in customers if c in dead and c in new],
            redeemed=[c for c in customers if c in redeemed],
        )
    raise CodeRefused(Refusal.KEY_REUSED)


def _issued_by_keys(pool: Pool, keys: list[str], by_customer: dict) -> dict[str, Code]:
    """Return the codes issued from the pool or its fallback under `keys` (by_customer:
    customer → key), by customer; an issue under a customer's key to someone else is not
    theirs (the claim then fails on the key, and the batch is refused as code_issue is)."""
    if not keys:
        return {}
    pool_ids = pool_and_fallback_ids(pool)
    customer_of = {key: customer for customer, key in by_customer.items()}
    if connection.vendor != "postgresql":
        issues = CodeIssue.objects.filter(pool_id__in=pool_ids, idempotency_key__in=keys)
        return _live_of(
            [
                (i.customer, i.pk, i.code)
                for i in issues.select_related("code__pool").order_by("id")
                if customer_of[i.idempotency_key] == i.customer
            ]
        )
    # One probe of the customer index per key, the only plan this form leaves ("pool_id + 0"
    # keeps the pool's indexes out): any form the planner could answer from the pool's own
    # entries hung on the statistics, and for a pool they had not seen grow (a new one) it read
    # all its issues, once per batch or once per key (a batch at a quarter of its speed).
    columns = ", ".join(f"c.{column}" for column in _CODE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT w.e->>0, i.id, {columns} FROM json_array_elements(%s::json) AS w(e)
            CROSS JOIN LATERAL (
                SELECT id, code_id FROM {CodeIssue._meta.db_table}
                WHERE customer = w.e->>0 AND idempotency_key = w.e->>1 AND pool_id + 0 = ANY(%s)
                LIMIT 1
            ) i
            JOIN {Code._meta.db_table} c ON c.id = i.code_id
            """,
            [json.dumps([(customer_of[key], key) for key in keys]), pool_ids],
        )
        rows = cursor.fetchall()
    return _live_of(codes_of_rows(rows, 2))


def _live_of(found: list[tuple]) -> dict[str, Code]:
    """Return the codes of (customer, issue id, code) that a retry may return; the keys of
    the dead ones are freed (see holdings.py), for their customers to get a fresh code."""
    held = sort_out(found)
    issues_retire([issue for issues in held.dead.values() for issue in issues])
    return {**held.redeemed, **held.live}


def _claim_many(
    pool: Pool, customers: list[str], keys: dict[str, str], caller: str, shard=None
) -> tuple[dict[str, Code], list[str]]:
    """Claim a code for each customer in `pool`; return the codes and the customers left over.
    Raises CodeRefused if the pool cannot issue; IntegrityError if a key was taken meanwhile."""
    if not customers:
        return {}, []
    claimed = codes_claim(
        pool=pool, wanted=[(c, keys[c]) for c in customers], caller=caller, shard=shard
    )
    if not claimed:
        refusal = nothing_claimed(pool)
        if refusal.reason != Refusal.NO_CODES_LEFT:
            raise refusal
    return claimed, [c for c in customers if c not in claimed]
