"""Issuing single codes: the claim of a code for a customer (one statement on PostgreSQL), the
idempotency key, the fallback pool; and giving an issued code back (release)."""

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from ..counters import pool_counts_add
from ..metrics import code_event
from ..models import Code, CodeIssue, Pool
from ..refusals import CodeRefused, Refusal
from ..signals import stock_changed_on_commit
from .claims import _claim_code as _claim_code  # the generic claim, named here as before
from .claims import codes_claim, nothing_claimed, pool_and_fallback_ids
from .holdings import issues_retire, sort_out
from .lookups import _find_code, bounded_key, customer_clean


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
    With an idempotency key (a message id, say), a retry returns the code already issued for it
    (unless it was since withdrawn or expired: then the retry issues a fresh code under the key,
    see _issue_by_key).
    In a multiple-use pool the code is handed out without being used up. Concurrent callers
    never get the same single-use code: the claim skips rows other transactions have locked.
    `caller` (an API key's prefix) is recorded as the code's issuer. A code returned by a
    retry (issued before under the key) has `again` set to True. When the pool has no
    issuable code and names a fallback pool, the code comes from the fallback (its `pool` says
    so). Raises CodeRefused.
    """
    customer = customer_clean(customer)
    batch = _batch_of(idempotency_key or "", customer)
    idempotency_key = bounded_key(idempotency_key)
    if idempotency_key:
        # A retry returns what was issued under the key, even once the pool is paused or ended:
        # it hands out nothing new.
        issued = _issue_by_key(pool, idempotency_key, customer)
        if issued:
            return issued
        if fallback and connection.vendor == "postgresql":
            with transaction.atomic():
                _key_lock(pool, idempotency_key, batch=batch)
                # Again under the lock: a call that held it has committed its issue by now.
                issued = _issue_by_key(pool, idempotency_key, customer)
                return issued or _code_issue_or_fallback(
                    pool, customer, idempotency_key, caller, fallback
                )
    return _code_issue_or_fallback(pool, customer, idempotency_key, caller, fallback)


def _key_lock(pool: Pool, key: str, *, batch: str = "") -> None:
    """Hold (until the transaction ends) the lock of issuing under `key` in the pool asked.

    The key's unique constraint is per pool of the code, so two concurrent calls under one key,
    one taking the pool's last code and the other finding it dry and taking from the fallback,
    would both issue; a key asked of a pool issues one code across the pool and its fallback
    only if such calls take turns.

    A single issue under "<batch key>:<customer>" is that batch's issue to the customer
    (batch_key), and a batch locks its own key only: `batch` names it, and the single issue
    holds its lock too, shared, so that it takes turns with the batch but not with the other
    single issues under that batch key."""
    names = [f"issue:{pool.pk}:{key}"]
    lock = "pg_advisory_xact_lock(hashtextextended(%s, 0))"
    if batch:
        # The batch's lock first, as a batch takes it (then the keys' unique index entries).
        names.insert(0, f"issue:{pool.pk}:{batch}")
        lock = f"pg_advisory_xact_lock_shared(hashtextextended(%s, 0)), {lock}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {lock}", names)


def _batch_of(key: str, customer: str) -> str:
    """Return the key of the batch whose issue to `customer` is recorded under `key` (the key
    as given, before bounded_key), or "" if it names none."""
    suffix = f":{customer}"
    return key[: -len(suffix)] if key.endswith(suffix) else ""


def _code_issue_or_fallback(
    pool: Pool, customer: str, idempotency_key: str, caller: str, fallback: bool
) -> Code:
    try:
        return _code_issue_here(pool, customer, idempotency_key, caller)
    except CodeRefused as refused:
        fallback_pool = pool_fallback(pool) if fallback else None
        # A fallback that does not issue (paused, ended) is as one run dry, as in a batch: the
        # customer asked this pool, whose answer is that it has no code left.
        if (
            refused.reason != Refusal.NO_CODES_LEFT
            or fallback_pool is None
            or fallback_pool.issue_refusal()
        ):
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
            return _claim_code_postgresql(pool, customer, idempotency_key, caller)
        claimed = codes_claim(pool=pool, wanted=[(customer, idempotency_key)], caller=caller)
        if not claimed:
            raise nothing_claimed(pool)
        return claimed[customer]
    except IntegrityError:
        # A concurrent call with the same key won; this one's claim was rolled back.
        issued = _issue_by_key(pool, idempotency_key, customer) if idempotency_key else None
        if issued is None:
            raise
        return issued


def _claim_code_postgresql(pool: Pool, customer: str, idempotency_key: str, caller: str) -> Code:
    """Claim a code for one customer: the n = 1 case of the one claim statement (codes_claim),
    which claims, records and counts in one round trip and one commit."""
    claimed = codes_claim(pool=pool, wanted=[(customer, idempotency_key)], caller=caller)
    if not claimed:
        raise nothing_claimed(pool)
    return claimed[customer]


def _issue_by_key(pool: Pool, key: str, customer: str) -> Code | None:
    """Return the code issued under `key` in the pool or its fallback (a retry of an issue
    that fell back returns that code), or None.

    A retry never returns a dead code: if the code issued under the key was since withdrawn,
    expired or redeemed by someone else, the key is freed (as code_release frees it) and None
    is returned, so that the retry issues a fresh code under it; the API answers it as any
    issue, with the new code. A code the customer redeemed is returned: it is what was issued
    under the key (see holdings.py)."""
    issue = (
        CodeIssue.objects.filter(_in_pool_or_fallback(pool), idempotency_key=key)
        .select_related("code__pool")
        .first()
    )
    if issue is None:
        return None
    if issue.customer != customer:
        raise CodeRefused(Refusal.KEY_REUSED)
    held = sort_out([(customer, issue.pk, issue.code)])
    if customer in held.dead:
        issues_retire(held.dead[customer])
        return None
    # Handed out before: the API's limits count only codes handed out anew.
    issue.code.again = True
    return issue.code


def keys_held(*, pool: Pool, keys: dict[str, str]) -> set[str]:
    """Return those of `keys` (idempotency key -> its customer) under which a call would be a
    retry: the key names an issue, in the pool or its fallback, to that customer, of a code
    they still hold (holdings.py). Under any other key a call hands a new code out."""
    stored = {bounded_key(key): key for key in keys if key}
    issues = CodeIssue.objects.filter(
        _in_pool_or_fallback(pool), idempotency_key__in=list(stored)
    ).select_related("code__pool")
    found = [
        (issue.customer, issue.pk, issue.code)
        for issue in issues
        if keys[stored[issue.idempotency_key]] == issue.customer
    ]
    held = sort_out(found)
    customers = {*held.live, *held.redeemed}
    return {key for key, customer in keys.items() if key and customer in customers}


def _in_pool_or_fallback(pool: Pool) -> Q:
    return Q(pool_id__in=pool_and_fallback_ids(pool))


# Giving codes back


@transaction.atomic
def code_release(*, pool: Pool, code: str, idempotency_key: str) -> Code:
    """Give an issued code back to stock, when its message was never delivered, and return it.

    Only a code not redeemed, and only by whoever issued it: the idempotency key it was issued
    under (for a batch: batch_key(key, customer); for an assignment, the key its report
    names). The code's row is locked, as redemption locks it, so a release and
    a redemption of the same code never both succeed. The issue stays in the code's history,
    marked released, and its key is freed: a retry under it issues anew. Raises CodeRefused.
    """
    key = bounded_key((idempotency_key or "").strip())
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
    code_event(found.pool, "released")
    return found
