from django.db.models import QuerySet

from pools.models import Pool

from .models import Import


def pool_import_history(pool: Pool, *, limit: int = 10) -> QuerySet[Import]:
    """Return the pool's latest imports, newest first."""
    return Import.objects.filter(pool=pool).select_related("created_by")[:limit]
