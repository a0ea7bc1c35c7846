"""Check, redeem and mark as issued: the rules a code is redeemed under (Code.redeem_refusal
decides), with the reason told only as far as the caller may know it."""

from django.db import transaction
from django.utils import timezone

from ..counters import pool_counts_add
from ..metrics import code_event
from ..models import (
    Code,
    CodeIssue,
    Pool,
    Redemption,
)
from ..refusals import CodeRefused, Refusal
from .lookups import _find_code, customer_clean


def _refusal_for(found: Code, customer: str, caller: str | None, at=None) -> Refusal | None:
    """Return why `customer` cannot redeem `found`, as far as `caller` may know it.

    Where codes are personal (issue before redemption), a code that is not the customer's
    answers like one that does not exist, so that its existence cannot be probed; the caller
    that issued or marked it (or a caller of None: the admin, the shell) hears the reason.
    """
    refusal = found.redeem_refusal(customer, at)
    if refusal == Refusal.NOT_ISSUED_TO_CUSTOMER and _hidden_from(found, caller):
        return Refusal.UNKNOWN_CODE
    return refusal


def _hidden_from(found: Code, caller: str | None) -> bool:
    """Return True if `caller` may not hear of a personal code that is not its customer's:
    only the caller that issued or marked it, and did not give it back, may (and the admin and
    the shell: None)."""
    return caller is not None and not (
        caller
        and CodeIssue.objects.filter(
            code=found, issued_by=caller, released_at__isnull=True
        ).exists()
    )


def code_check(
    *, code: str, customer: str, pool: Pool | None = None, caller: str | None = None
) -> Code:
    """Return the code if `customer` could redeem it now, without redeeming it.

    Raises CodeRefused with the reason otherwise, as far as `caller` (an API key's prefix;
    None for the admin and the shell) may know it: see _refusal_for.
    """
    customer = customer_clean(customer)
    found = _find_code(code, pool, lock=False)
    refusal = _refusal_for(found, customer, caller)
    if refusal:
        raise CodeRefused(refusal)
    return found


@transaction.atomic
def code_redeem(
    *,
    code: str,
    customer: str,
    pool: Pool | None = None,
    order_reference: str = "",
    caller: str | None = None,
) -> Redemption:
    """Redeem a code for `customer` under its pool's rules and return the redemption.

    Repeating a redemption with the same order reference returns the first one. A code string
    that is in several pools needs `pool`. The code's row is locked, so a single-use code is
    never redeemed twice however many callers try at once. Raises CodeRefused, with the
    reason as far as `caller` may know it (as code_check).
    """
    customer = customer_clean(customer)
    found = _find_code(code, pool, lock=True)
    order_reference = order_reference.strip()
    if order_reference:
        previous = Redemption.objects.filter(code=found, order_reference=order_reference).first()
        if previous is not None:
            if previous.customer != customer:
                # Told only as far as the caller may hear of the code at all.
                refusal = _refusal_for(found, customer, caller)
                raise CodeRefused(refusal or Refusal.ALREADY_REDEEMED)
            return previous
    now = timezone.now()
    refusal = _refusal_for(found, customer, caller, now)
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
    code_event(found.pool, "redeemed")
    return redemption


@transaction.atomic
def code_mark_issued(
    *, code: str, customer: str, pool: Pool | None = None, caller: str = ""
) -> Code:
    """Record that a code handed out elsewhere (printed, sent by another system) was issued
    to `customer`, by `caller` (an API key's prefix) if given. Marking it again for the same
    customer changes nothing. Raises CodeRefused.
    """
    customer = customer_clean(customer)
    found = _find_code(code, pool, lock=True)
    # A personal code handed to someone else answers as check answers it, before anything
    # about its pool: marking is how codes of such pools become someone's, so an available
    # one can be marked, but nobody else's can be probed.
    if (
        found.status != Code.Status.AVAILABLE
        and not found.is_held_by(customer)
        and _hidden_from(found, caller or None)
    ):
        raise CodeRefused(Refusal.UNKNOWN_CODE)
    refusal = found.pool.issue_refusal()
    if refusal:
        raise CodeRefused(refusal)
    if found.status == Code.Status.WITHDRAWN:
        raise CodeRefused(Refusal.WITHDRAWN)
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
    CodeIssue.objects.create(
        pool=found.pool, code=found, customer=customer, marked=True, issued_by=caller
    )
    code_event(found.pool, "marked_issued")
    return found
