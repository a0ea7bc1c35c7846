"""Reads of campaigns and pools that the admin and the API share.

The texts here (the launch confirmation's facts and warnings, the pool's history) are read by
staff in the admin: translated in their request, numbers formatted for their language."""

from collections.abc import Callable
from datetime import datetime, time, timedelta

from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext, pgettext
from django.utils.translation import gettext_lazy as _

from .models import Code, CodeAddition, CodeIssue, Pool, PoolCounter, Redemption, Withdrawal

NO_CODES = _("It has no codes: it would refuse every issue until codes are added.")
ALL_EXPIRED = _("All its codes have expired: it would refuse every issue.")
NO_STOCK = _("No code can be issued now (all are issued, redeemed, withdrawn or expired).")
THRESHOLD_ABOVE_STOCK = _(
    "Its alert threshold ({threshold}) is above its stock ({stock}): subscribers would get "
    "a low-stock e-mail at once."
)
LOCKED_AT_LAUNCH = _(
    "The pool ID “{slug}”, the template parameter “{parameter}” and “codes can be used "
    "multiple times” ({multiple}) can no longer be changed."
)


def _number(value: int) -> str:
    return number_format(value, force_grouping=True)


# A customer's codes that the codes list's search (and an export of it) finds, at most.
CUSTOMER_CODES_SHOWN = 1000


def codes_search(queryset: QuerySet[Code], term: str) -> QuerySet[Code]:
    """Return the codes of `queryset` that the codes list's search for `term` finds: codes
    starting with it (as typed, and in capitals) and the codes issued to it as a customer id.

    Each branch is served by an index, so the search stays fast on ten million codes: a
    prefix (LIKE 'ABC%', which an exact code is too) by the code's pattern index, a customer's
    codes by the issues' customer index. A substring search would scan.
    """
    term = term.strip()
    customer_codes = list(
        CodeIssue.objects.filter(customer=term).values_list("code_id", flat=True)[
            :CUSTOMER_CODES_SHOWN
        ]
    )
    found = Q(code__startswith=term) | Q(pk__in=customer_codes)
    if term.upper() != term:
        found |= Q(code__startswith=term.upper())
    return queryset.filter(found)


# Codes asked about per query: well under SQLite's 32,766 bound parameters, and a few
# queries for a preview's sample of 20,000 rows.
CODES_PER_QUERY = 5_000


def pool_codes_present(pool: Pool, codes) -> set[str]:
    """Return which of `codes` the pool holds (any status), exactly as written: what an
    import of them would count as already in the pool. Each query is served by the unique
    (code, pool) index."""
    codes = list(dict.fromkeys(codes))
    present: set[str] = set()
    for start in range(0, len(codes), CODES_PER_QUERY):
        chunk = codes[start : start + CODES_PER_QUERY]
        present.update(
            Code.objects.filter(pool=pool, code__in=chunk).values_list("code", flat=True)
        )
    return present


# Checks that apps above pools add to the launch confirmation: callables (pool) -> list of
# warnings, registered in their AppConfig.ready() (notifications: no subscribers).
launch_warning_checks: list[Callable[[Pool], list[str]]] = []


def pools_with_counts(queryset: QuerySet[Pool] | None = None) -> QuerySet[Pool]:
    """Annotate pools with their code counts: codes_available, codes_issued, codes_redeemed,
    codes_expired, codes_withdrawn and codes_total.

    One join on the pool's few counter rows, never a count over its codes.
    """
    queryset = Pool.objects.all() if queryset is None else queryset
    return queryset.annotate(
        codes_available=Coalesce(Sum("counters__available"), Value(0)),
        codes_issued=Coalesce(Sum("counters__issued"), Value(0)),
        codes_redeemed=Coalesce(Sum("counters__redeemed"), Value(0)),
        codes_expired=Coalesce(Sum("counters__expired"), Value(0)),
        codes_withdrawn=Coalesce(Sum("counters__withdrawn"), Value(0)),
    ).annotate(
        codes_total=F("codes_available")
        + F("codes_issued")
        + F("codes_redeemed")
        + F("codes_expired")
        + F("codes_withdrawn")
    )


def pool_stock(*, pool: Pool) -> int:
    """Return how many codes of the pool can still be issued (its available codes).

    Read from the pool's counter rows: cheap enough to call after every issue.
    """
    return PoolCounter.objects.filter(pool=pool).aggregate(total=Sum("available"))["total"] or 0


def pool_code_total(pool: Pool) -> int:
    """Return how many codes the pool holds, whatever their status (expired ones too)."""
    return pool_with_counts(pool).codes_total


def pool_with_counts(pool: Pool) -> Pool:
    """Return the pool as saved now, carrying the counts of pools_with_counts."""
    return pools_with_counts(Pool.objects.filter(pk=pool.pk)).get()


# Low stock, the one rule every screen and the alert follow. A manager expects "low stock" of a
# pool that had codes and is running out of them: not of a draft (it issues nothing yet; the
# launch confirmation warns of a threshold above its stock), nor of an ended pool (it never
# issues again), nor of a pool that never held a code (it is empty, not low: the launch
# confirmation says so). A paused pool still wears the badge, since it will issue again when
# resumed; only an active pool is alerted (a paused one alerts when resumed, if still low).
LOW_STOCK_STATUSES = (Pool.Status.ACTIVE, Pool.Status.PAUSED)


def pool_is_low(pool: Pool) -> bool:
    """Return True if the pool wears the "low stock" badge; it must carry pools_with_counts."""
    return (
        pool.status in LOW_STOCK_STATUSES
        and pool.codes_total > 0
        and pool.is_below_threshold(pool.codes_available)
    )


def pool_alerts_now(pool: Pool) -> bool:
    """Return True if the pool's stock calls for a low-stock alert now (an active pool that is
    low, see LOW_STOCK_STATUSES); it must carry pools_with_counts."""
    return pool.is_active and pool_is_low(pool)


def pools_low(queryset: QuerySet[Pool] | None = None) -> QuerySet[Pool]:
    """Return the pools of `queryset` for which pool_is_low holds, with their counts."""
    return pools_with_counts(queryset).filter(
        status__in=LOW_STOCK_STATUSES,
        notify_below_enabled=True,
        notify_below__gt=0,
        codes_total__gt=0,
        codes_available__lt=F("notify_below"),
    )


def pool_issued_since(pool: Pool, *, since: datetime) -> tuple[int, int]:
    """Return how many codes of the pool were issued (marked as issued too) since `since`,
    and how many issues were given back (released) since then."""
    issues = CodeIssue.objects.filter(pool=pool)
    issued = issues.filter(issued_at__gte=since).count()
    released = issues.filter(released_at__gte=since).count()
    return issued, released


def pool_daily_activity(pool: Pool, *, days: int = 30, stock: int) -> list[dict]:
    """Return, for each of the last `days` days, the codes added, issued, given back (released),
    redeemed and withdrawn (or removed by an undo), and the stock left at the day's end.

    The stock line is worked back from today's `stock` through each day's movements (added and
    given back, minus used up, withdrawn and removed); codes that expired are not in the
    movements, so before an expiry the line runs a little low. Days before the pool was
    created have no stock (None): there was no pool to hold any.
    """
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))
    created = timezone.localdate(pool.created_at)

    def per_day(queryset, field, value=None):
        rows = (
            queryset.filter(**{f"{field}__gte": since})
            .annotate(day=TruncDate(field))
            .values("day")
            .annotate(total=Sum(value) if value else Count("pk"))
        )
        return {row["day"]: row["total"] or 0 for row in rows}

    added = per_day(CodeAddition.objects.filter(pool=pool), "added_at", "codes_added")
    # Withdrawals and undone additions take codes out of the stock.
    taken = per_day(Withdrawal.objects.filter(pool=pool), "finished_at", "from_stock")
    for day, removed in per_day(
        CodeAddition.objects.filter(pool=pool), "removed_at", "codes_removed"
    ).items():
        taken[day] = taken.get(day, 0) + removed
    issued = per_day(CodeIssue.objects.filter(pool=pool), "issued_at")
    released = per_day(CodeIssue.objects.filter(pool=pool), "released_at")
    redeemed = per_day(Redemption.objects.filter(code__pool=pool), "redeemed_at")
    # What uses a code up: issuing it in a single-use pool (redeeming an issued code does not
    # change the stock again), and giving it back returns it; in a multiple-use pool neither.
    used_up = {} if pool.allow_multiple_use else issued
    returned = {} if pool.allow_multiple_use else released
    activity = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        activity.append(
            {
                "day": day,
                "added": added.get(day, 0),
                "issued": issued.get(day, 0),
                "released": released.get(day, 0),
                "redeemed": redeemed.get(day, 0),
                "withdrawn": taken.get(day, 0),
                "stock": stock if day >= created else None,
            }
        )
        stock = max(
            0,
            stock
            - added.get(day, 0)
            - returned.get(day, 0)
            + used_up.get(day, 0)
            + taken.get(day, 0),
        )
    activity.reverse()
    return activity


def launch_summary(pool: Pool) -> dict:
    """Return what launching `pool` means (what locks, its stock and threshold) and what is
    probably a mistake, for the launch confirmation; `pool` must carry pools_with_counts."""
    stock = pool.codes_available
    facts = [
        LOCKED_AT_LAUNCH.format(
            slug=pool.slug,
            parameter=pool.template_parameter,
            multiple=pgettext("a setting", "on")
            if pool.allow_multiple_use
            else pgettext("a setting", "off"),
        ),
        gettext("Codes in stock (can be issued now): %(stock)s of %(total)s.")
        % {"stock": _number(stock), "total": _number(pool.codes_total)},
        gettext("Low-stock alert: below %(threshold)s.") % {"threshold": _number(pool.notify_below)}
        if pool.notify_below_enabled
        else gettext("Low-stock alert: off."),
    ]
    warnings = []
    if not pool.codes_total:
        warnings.append(NO_CODES)
    elif pool.codes_expired == pool.codes_total:
        warnings.append(ALL_EXPIRED)
    elif not stock:
        warnings.append(NO_STOCK)
    if pool.codes_total and pool.is_below_threshold(stock):
        warnings.append(
            THRESHOLD_ABOVE_STOCK.format(threshold=_number(pool.notify_below), stock=_number(stock))
        )
    for check in launch_warning_checks:
        warnings.extend(check(pool))
    return {"pool": pool, "facts": facts, "warnings": warnings, "blockers": pool.launch_blockers()}


def pools_below_threshold() -> list[Pool]:
    """Return the pools that wear the "low stock" badge (pool_is_low), with their counts."""
    return list(pools_low().select_related("campaign").order_by("campaign__name", "slug"))


def pools_expiring_soon(*, days: int = 7) -> list[tuple[Pool, int]]:
    """Return the launched pools with available codes that stop being issuable (Issue-end or
    Available-till) within `days`, with how many; served by two partial indexes."""
    now = timezone.now()
    soon = now + timedelta(days=days)
    rows = (
        Code.objects.filter(status=Code.Status.AVAILABLE)
        .filter(Q(available_till__range=(now, soon)) | Q(issue_end__range=(now, soon)))
        .values("pool")
        .annotate(n=Count("id"))
        .values_list("pool", "n")
    )
    counts = dict(rows)
    pools = Pool.objects.filter(pk__in=counts).exclude(status=Pool.Status.ENDED)
    return [(pool, counts[pool.pk]) for pool in pools.select_related("campaign")]


def pool_history(pool: Pool) -> list[dict]:
    """Return the pool's status changes, withdrawals and undone additions, newest first."""
    items = [
        {"at": e.at, "what": e.get_action_display(), "who": e.user, "why": e.reason}
        for e in pool.events.select_related("user")
    ]
    items += [
        {
            "at": w.created_at,
            "what": _withdrew(w.codes_withdrawn, w.codes_requested),
            "who": w.created_by,
            "why": w.reason,
            "withdrawal": w,
        }
        for w in pool.withdrawals.select_related("created_by")
    ]
    items += [
        {
            "at": a.removed_at,
            "what": _removed(a.codes_removed, a.codes_added),
            "who": a.removed_by,
            "why": "",
        }
        for a in pool.additions.filter(codes_removed__gt=0).select_related("removed_by")
    ]
    return sorted(items, key=lambda item: item["at"], reverse=True)


def _withdrew(withdrawn: int, requested: int) -> str:
    if withdrawn == requested:
        return ngettext("Withdrew %(count)s code", "Withdrew %(count)s codes", withdrawn) % {
            "count": _number(withdrawn)
        }
    return ngettext(
        "Withdrew %(withdrawn)s of the %(requested)s code asked for",
        "Withdrew %(withdrawn)s of the %(requested)s codes asked for",
        requested,
    ) % {"withdrawn": _number(withdrawn), "requested": _number(requested)}


def _removed(removed: int, added: int) -> str:
    if removed == added:
        return ngettext(
            "Removed the only code of an addition",
            "Removed all %(count)s codes of an addition",
            added,
        ) % {"count": _number(added)}
    return ngettext(
        "Removed %(removed)s of the %(added)s code of an addition",
        "Removed %(removed)s of the %(added)s codes of an addition",
        added,
    ) % {"removed": _number(removed), "added": _number(added)}
