"""Refill: a pool filled by generation tops itself up when its stock falls below its
"keep at least" level, by a generation import like any other (same worker, same report), still
within the 1% capacity rule (generation.MAX_FILL).

Connected to pools' stock_changed in apps.py, which the pool sends after issues, withdrawals and
expiry when it alerts or refills; the check reads the pool's row and counter rows, and takes
the pool's row lock only when a refill is due, so that two issues never start two refills.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy

from pools.models import Pool
from pools.selectors import pool_code_total, pool_stock

from .generation import CodeFormat
from .models import Import, generated_name
from .selectors import generation_allowed
from .services import import_generate_start
from .signals import refill_stopped_on_commit

REFILL_STOPPED = gettext_lazy(
    "The pool's stock fell below %(level)s but no refill can run: %(reason)s Change the pool's "
    "format (a longer length) by generating codes by hand, or turn the refill off."
)


def refill_check(*, pool: Pool) -> Import | None:
    """Start a refill of `pool` if its stock is below its level and none is under way; return
    the import (a failed one, with the reason, when the capacity rule stops it)."""
    pool = Pool.objects.filter(
        pk=pool.pk, refill_below__isnull=False, status=Pool.Status.ACTIVE
    ).first()
    if pool is None or pool_stock(pool=pool) >= pool.refill_below:
        return None
    if not generation_allowed(pool):
        return None
    with transaction.atomic():
        Pool.objects.select_for_update().filter(pk=pool.pk).first()
        refills = Import.objects.filter(pool=pool, refill=True)
        if refills.filter(status__in=(Import.Status.QUEUED, Import.Status.RUNNING)).exists():
            return None
        if pool_stock(pool=pool) >= pool.refill_below:
            return None  # a refill finished meanwhile
        code_format = _format_of(pool)
        existing = pool_code_total(pool)
        count = min(pool.refill_count or 0, code_format.available_for_generation(existing))
        if count > 0:
            return import_generate_start(
                pool=pool,
                count=count,
                length=code_format.length,
                alphabet=code_format.alphabet,
                prefix=code_format.prefix,
                refill=True,
            )
        last = refills.order_by("-id").first()
        if last is not None and last.status == Import.Status.FAILED and last.needs_new_file:
            return None  # already stopped and told; a refill that runs again re-arms this
        # Nobody started this one: its report is written in the project's language, whatever
        # request or worker happened to change the stock.
        with translation.override(settings.LANGUAGE_CODE):
            reason = code_format.too_many(pool.refill_count or 1, existing)
            message = REFILL_STOPPED % {
                "level": number_format(pool.refill_below, force_grouping=True),
                "reason": reason,
            }
        job = Import.objects.create(
            pool=pool,
            source=Import.Source.GENERATION,
            refill=True,
            status=Import.Status.FAILED,
            needs_new_file=True,
            generation={
                "count": pool.refill_count,
                "length": code_format.length,
                "alphabet": code_format.alphabet,
                "prefix": code_format.prefix,
            },
            file_name=generated_name(pool.refill_count or 0, refill=True),
            message=message,
            finished_at=timezone.now(),
        )
        refill_stopped_on_commit(job)
    return job


def _format_of(pool: Pool) -> CodeFormat:
    """The format of the pool's last generation (what a refill draws again), else the default."""
    last = (
        Import.objects.filter(pool=pool, source=Import.Source.GENERATION, refill=False)
        .exclude(status=Import.Status.FAILED)
        .order_by("-id")
        .values_list("generation", flat=True)
        .first()
    )
    if not last:
        return CodeFormat()
    return CodeFormat(
        length=last.get("length", CodeFormat.length),
        alphabet=last.get("alphabet", CodeFormat.alphabet),
        prefix=last.get("prefix", ""),
    )
