"""What must hold of codes, their issues and redemptions and the pools' counters after any
interleaving of writers: read from the database, for the small pools of tests (every code is
looked at). Race tests call assert_invariants after each interleaving; any test may."""

from collections import Counter, defaultdict

from pools.models import Code, CodeIssue, Pool, PoolCounter, Redemption

_STATUSES = [status.value for status in Code.Status]


def invariant_violations(pools=None) -> list[str]:
    """Return what is wrong with the codes of `pools` (all pools if None), one line each:

    - counters: the pool's counter rows, summed by status, equal its codes counted by status;
    - redemptions: a code's times_redeemed equals its Redemption rows (none lost, none made up);
      a single-use code is redeemed at most once, and is `redeemed` exactly when it was;
      a multiple-use code is never `redeemed`;
    - issues: a single-use code's issues not given back name one customer, its `issued_to`, and
      it is issued, redeemed or withdrawn; an issued single-use code has such an issue; each
      issue is of its code's pool;
    - keys: an idempotency key names one issue across a pool and its fallback.
    """
    pools = list(Pool.objects.all() if pools is None else pools)
    pool_ids = [pool.pk for pool in pools]
    multiple = dict(Pool.objects.filter(pk__in=pool_ids).values_list("pk", "allow_multiple_use"))
    wrong: list[str] = []

    codes = list(Code.objects.filter(pool_id__in=pool_ids).order_by("pk"))
    counted = Counter((code.pool_id, code.status) for code in codes)
    for pool_id in pool_ids:
        rows = PoolCounter.objects.filter(pool_id=pool_id)
        for status in _STATUSES:
            in_counters = sum(getattr(row, status) for row in rows)
            if in_counters != counted[(pool_id, status)]:
                wrong.append(
                    f"pool {pool_id}: counters say {in_counters} {status}, "
                    f"the codes {counted[(pool_id, status)]}"
                )

    redemptions = Counter(
        Redemption.objects.filter(code__pool_id__in=pool_ids).values_list("code_id", flat=True)
    )
    live_issues = defaultdict(list)
    for issue in CodeIssue.objects.filter(code__pool_id__in=pool_ids).select_related("code"):
        if issue.pool_id != issue.code.pool_id:
            wrong.append(f"issue {issue.pk} of {issue.code}: pool {issue.pool_id}")
        if issue.released_at is None:
            live_issues[issue.code_id].append(issue.customer)

    for code in codes:
        name = f"{code.code} ({code.status})"
        if code.times_redeemed != redemptions[code.pk]:
            wrong.append(
                f"{name}: times_redeemed {code.times_redeemed}, {redemptions[code.pk]} redemptions"
            )
        if multiple[code.pool_id]:
            if code.status == Code.Status.REDEEMED:
                wrong.append(f"{name}: a multiple-use code is never used up")
            continue
        if redemptions[code.pk] > 1:
            wrong.append(f"{name}: a single-use code redeemed {redemptions[code.pk]} times")
        if (code.status == Code.Status.REDEEMED) != (code.times_redeemed == 1):
            wrong.append(f"{name}: times_redeemed {code.times_redeemed}")
        holders = set(live_issues[code.pk])
        if len(holders) > 1:
            wrong.append(f"{name}: issued to {sorted(holders)}")
        if holders and (
            holders != {code.issued_to}
            or code.status not in (Code.Status.ISSUED, Code.Status.REDEEMED, Code.Status.WITHDRAWN)
        ):
            wrong.append(f"{name}: issued to {code.issued_to!r}, issues to {sorted(holders)}")
        if code.status == Code.Status.ISSUED and not holders:
            wrong.append(f"{name}: issued to {code.issued_to!r} without an issue")
        if code.status in (Code.Status.AVAILABLE, Code.Status.EXPIRED) and (
            code.issued_to or code.issued_at
        ):
            wrong.append(f"{name}: still names {code.issued_to!r}")

    fallback_of = dict(Pool.objects.values_list("pk", "fallback_pool_id"))
    pools_of_key = defaultdict(set)
    for pool_id, key in (
        CodeIssue.objects.filter(pool_id__in=pool_ids)
        .exclude(idempotency_key="")
        .values_list("pool_id", "idempotency_key")
    ):
        pools_of_key[key].add(pool_id)
    for key, keyed in pools_of_key.items():
        for pool_id in keyed:
            if fallback_of.get(pool_id) in keyed:
                wrong.append(
                    f"key {key!r}: an issue in pool {pool_id} and in its fallback "
                    f"{fallback_of[pool_id]}"
                )
    return wrong


def assert_invariants(pools=None) -> None:
    """Fail with every violation of invariant_violations, if any."""
    wrong = invariant_violations(pools)
    assert not wrong, "\n".join(wrong)
