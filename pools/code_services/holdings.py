"""The code a customer holds: the one rule every path that hands a code out again follows (a
retry under an idempotency key, a batch once per customer, an assignment and the list it writes,
the release of an assignment's codes).

A customer holds the code of their latest issue in the pool (or its fallback) that was not
given back, if that code can still be used: issued (or, multiple-use, handed out) and neither
withdrawn nor expired. A dead code is never put in front of a customer again:

- withdrawn, expired (swept, or past its Available-till), or redeemed by someone else: not
  held. The customer gets a fresh code, and the dead code's issue gives up its idempotency key
  (as code_release frees it, into released_key) so that the new issue can be recorded under
  it; the issue stays in the code's history.
- a single-use code the customer redeemed themselves: reported as redeemed. A batch once per
  customer (an assignment, a mailing) sends them nothing: one code per customer per pool in a
  mailing, and theirs is used. A retry under the key it was issued under returns it, as any
  retry returns what was issued under its key.
"""

import json
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import F
from django.utils import timezone

from ..models import Code, CodeIssue, Pool, Redemption
from .claims import _CODE_ATTNAMES, _CODE_COLUMNS, _code_from_row, pool_and_fallback_ids

_DEAD = (Code.Status.WITHDRAWN, Code.Status.EXPIRED)


@dataclass
class Holdings:
    # Codes the customers hold and may be given again, by customer.
    live: dict[str, Code] = field(default_factory=dict)
    # Single-use codes the customers redeemed themselves (and hold nothing live).
    redeemed: dict[str, Code] = field(default_factory=dict)
    # Issues (ids) whose code is dead, of the customers who hold nothing live nor redeemed:
    # they are to get a fresh code.
    dead: dict[str, list[int]] = field(default_factory=dict)


def codes_held(*, pool: Pool, customers: list[str]) -> dict[str, Code]:
    """Return the code each of `customers` holds from the pool or its fallback (issued, not
    given back, neither withdrawn nor expired; the latest when there are several), by
    customer."""
    return customer_holdings(pool=pool, customers=customers).live


def customer_holdings(*, pool: Pool, customers: list[str]) -> Holdings:
    """Return what each of `customers` holds from the pool or its fallback: a live code, a
    code they redeemed, or only dead codes (see the module's docstring)."""
    pool_ids = pool_and_fallback_ids(pool)
    if connection.vendor == "postgresql":
        found = _issues_postgresql(pool_ids, customers)
    else:
        # By customer alone, the pools filtered here: given the pool too, the planner ANDs in
        # the pool's index entries, all of them, for every batch of an assignment.
        issues = (
            CodeIssue.objects.filter(customer__in=customers, released_at__isnull=True)
            .select_related("code__pool")
            .order_by("id")
        )
        found = [(i.customer, i.pk, i.code) for i in issues if i.pool_id in pool_ids]
    return sort_out(found)


def _issues_postgresql(pool_ids: list[int], customers: list[str]) -> list[tuple[str, int, Code]]:
    # One look-up by the customer's index per customer: as one scan for all the customers, a
    # table grown since it was last analyzed (by an assignment's own issues) was read whole,
    # slice after slice (up to 0.2 s each at 1,000,000 issues). "pool_id + 0": the pools
    # filtered on the rows found, not ANDed in from the pool's index.
    columns = ", ".join(f"c.{column}" for column in _CODE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT w.customer, i.id, {columns}
            FROM json_array_elements_text(%s::json) AS w(customer)
            CROSS JOIN LATERAL (
                SELECT id, code_id FROM {CodeIssue._meta.db_table}
                WHERE customer = w.customer AND released_at IS NULL
                    AND pool_id + 0 = ANY(%s)
            ) i
            JOIN {Code._meta.db_table} c ON c.id = i.code_id
            ORDER BY i.id
            """,
            [json.dumps(customers), pool_ids],
        )
        rows = cursor.fetchall()
    return codes_of_rows(rows, 2)


def codes_of_rows(rows, first_column: int) -> list[tuple]:
    """Return the rows with their code's columns (from `first_column` on) as a Code."""
    if not rows:
        return []
    pool_at = first_column + _CODE_ATTNAMES.index("pool_id")
    pools = Pool.objects.in_bulk({row[pool_at] for row in rows})
    db = connection.alias
    return [
        (*row[:first_column], _code_from_row(row[first_column:], pools[row[pool_at]], db))
        for row in rows
    ]


def sort_out(found: list[tuple[str, int, Code]]) -> Holdings:
    """Sort (customer, issue id, code) triples, in issue order, into Holdings."""
    now = timezone.now()
    redeemed_codes = {code.pk for _, _, code in found if code.status == Code.Status.REDEEMED}
    redeemers = set()
    if redeemed_codes:
        redeemers = set(
            Redemption.objects.filter(code_id__in=redeemed_codes).values_list("code_id", "customer")
        )
    holdings = Holdings()
    for customer, issue_id, code in found:
        if code.status == Code.Status.REDEEMED:
            if (code.pk, customer) in redeemers:
                holdings.redeemed[customer] = code
                continue
        elif code.status not in _DEAD and not (code.available_till and code.available_till < now):
            holdings.live[customer] = code  # the latest live one wins
            continue
        holdings.dead.setdefault(customer, []).append(issue_id)
    for customer in holdings.live:
        holdings.redeemed.pop(customer, None)
    for customer in [*holdings.live, *holdings.redeemed]:
        holdings.dead.pop(customer, None)
    return holdings


def issues_retire(issue_ids: list[int]) -> None:
    """Free the idempotency keys of issues whose code is dead, as code_release frees a key
    (into released_key), so that a fresh code can be recorded under them."""
    if issue_ids:
        CodeIssue.objects.filter(pk__in=issue_ids).exclude(idempotency_key="").update(
            released_key=F("idempotency_key"), idempotency_key=""
        )
