"""Reads of campaigns and pools that the admin and the API share."""

from datetime import datetime, time, timedelta

from django.db.models import Count, F, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from .models import CodeAddition, CodeIssue, Pool, PoolCounter, Redemption


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
    return pools_with_counts(Pool.objects.filter(pk=pool.pk)).get().codes_total


def pool_daily_activity(pool: Pool, *, days: int = 30, stock: int) -> list[dict]:
    """Return, for each of the last `days` days, the codes added, issued and redeemed, and the
    stock left at the day's end.

    The stock line is worked back from today's `stock` through each day's movements (added
    minus used up); codes that expired are not in the movements, so before an expiry the line
    runs a little low.
    """
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))

    def per_day(queryset, field, value=None):
        rows = (
            queryset.filter(**{f"{field}__gte": since})
            .annotate(day=TruncDate(field))
            .values("day")
            .annotate(total=Sum(value) if value else Count("pk"))
        )
        return {row["day"]: row["total"] or 0 for row in rows}

    added = per_day(CodeAddition.objects.filter(pool=pool), "added_at", "codes_added")
    issued = per_day(CodeIssue.objects.filter(pool=pool), "issued_at")
    redeemed = per_day(Redemption.objects.filter(code__pool=pool), "redeemed_at")
    # What uses a code up: issuing it in a single-use pool (redeeming an issued code does not
    # change the stock again); in a multiple-use pool nothing does.
    used_up = {} if pool.allow_multiple_use else issued
    activity = []
    for offset in range(days):
        day = today - timedelta(days=offset)
        activity.append(
            {
                "day": day,
                "added": added.get(day, 0),
                "issued": issued.get(day, 0),
                "redeemed": redeemed.get(day, 0),
                "stock": stock,
            }
        )
        stock = max(0, stock - added.get(day, 0) + used_up.get(day, 0))
    activity.reverse()
    return activity
