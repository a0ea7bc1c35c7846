"""Reads of campaigns and pools that the admin and the API share."""

from django.db.models import QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from .models import Pool


def pools_with_counts(queryset: QuerySet[Pool] | None = None) -> QuerySet[Pool]:
    """Annotate pools with their code counts: codes_available, codes_issued, codes_redeemed.

    One join on the pool's few counter rows, never a count over its codes.
    """
    queryset = Pool.objects.all() if queryset is None else queryset
    return queryset.annotate(
        codes_available=Coalesce(Sum("counters__available"), Value(0)),
        codes_issued=Coalesce(Sum("counters__issued"), Value(0)),
        codes_redeemed=Coalesce(Sum("counters__redeemed"), Value(0)),
    )
