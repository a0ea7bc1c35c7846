"""The list an assignment hands back: the uploaded list again, with a Code column.

Written while the slices commit (see assignments._issue_in_order); a job resumed after a kill
writes it here instead, from the codes the customers hold (pools' codes_held: never a
withdrawn, expired or redeemed code, whose cell stays empty).
"""

import io
import os
import tempfile

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import connection, transaction

from pools.code_services import codes_held, customer_clean
from pools.exports import FormulaSafeWriter
from pools.models import Pool

from .customer_lists import open_customer_list
from .models import Assignment
from .readers import UnreadableRow
from .templates_download import column_title

RESULT_COLUMN = "Code"


def plan_for_lookups(cursor) -> None:
    """Plan the rest of the transaction's statements as the look-ups by index they are, not
    by estimates: the customers' look-up's estimate (a loop per customer) passed the threshold
    of JIT compilation, which then took 0.1 s of each 5,000 customers' 0.11 s; and while the
    issues table was small when last analyzed, each customer's look-up read it whole (20 s of
    an assignment of 1,000,000 customers, in its first 200,000)."""
    cursor.execute("SET LOCAL jit = off")
    cursor.execute("SET LOCAL enable_seqscan = off")


def result_store(job: Assignment, text: io.TextIOWrapper) -> None:
    """Store the written list as the job's result."""
    text.flush()
    out = text.detach()
    out.seek(0)
    stem = os.path.splitext(job.file_name)[0] or "customers"
    job.result.save(f"{stem}-with-codes.csv", File(out), save=False)
    Assignment.objects.filter(pk=job.pk).update(result=job.result.name)


def result_write(job: Assignment) -> None:
    """Write the uploaded list again with a Code column: each customer's code (the one they
    hold from the pool or its fallback), empty for rows rejected or left without a code."""
    with tempfile.TemporaryFile() as out, job.file.open("rb") as stored:
        text = io.TextIOWrapper(out, encoding="utf-8", newline="")
        writer = FormulaSafeWriter(text)
        table = open_customer_list(stored, name=job.file_name, size=job.file.size)
        writer.writerow([*table.header, column_title(RESULT_COLUMN)])
        batch = []

        def flush():
            ids = []
            for _, cells in batch:
                if not isinstance(cells, UnreadableRow):
                    ids.append(cells[table.customer_index].strip())
            # Only ids a customer can have (a rejected row's): one with a NUL cannot even be
            # looked up.
            ids = [c for c in ids if _usable(c)]
            held = _codes_held(job.pool, ids)
            for _, cells in batch:
                if isinstance(cells, UnreadableRow):
                    continue
                writer.writerow([*cells, held.get(cells[table.customer_index].strip(), "")])
            batch.clear()

        for row in table.rows:
            batch.append(row)
            if len(batch) >= settings.ASSIGN_BATCH_SIZE * 2:
                flush()
        flush()
        result_store(job, text)


def _codes_held(pool: Pool, customers: list[str]) -> dict[str, str]:
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                plan_for_lookups(cursor)
        return {c: code.code for c, code in codes_held(pool=pool, customers=customers).items()}


def _usable(customer: str) -> bool:
    try:
        customer_clean(customer)
    except ValidationError:
        return False
    return True
