"""Reads of imports that the admin and the services share."""

from django.db.models import QuerySet

from pools.models import Pool

from .models import Import


def pool_import_history(pool: Pool, *, limit: int = 10) -> QuerySet[Import]:
    """Return the pool's latest imports, newest first."""
    return Import.objects.filter(pool=pool).select_related("created_by")[:limit]


def generation_allowed(pool: Pool) -> bool:
    """Return True if the pool still offers generation: no manual upload was made to it."""
    return (
        not Import.objects.filter(pool=pool, source__in=Import.MANUAL_SOURCES)
        .exclude(status=Import.Status.FAILED)
        .exists()
    )
