"""`manage.py assign_codes FILE --pool ID -o FILE`: an assignment, for a terminal or a script."""

import shutil
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from imports import assignments
from imports.assignment_services import assignment_start
from imports.models import Assignment
from pools.management.terminal import (
    FAILED,
    ROWS_REFUSED,
    answer,
    job_run_watched,
    on_terminal,
    pool_named,
)


class Command(BaseCommand):
    help = (
        "Issue a code of a pool to every customer of a list (CSV or XLSX) and write the list back "
        "with their codes, as the admin's assignment does. Exits 0 when every customer got a "
        "code, 1 when rows were rejected or the pool ran dry (0 with --allow-short), 2 when the "
        "list was refused or the assignment failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--pool", required=True, help="the pool ID (or its number)")
        parser.add_argument("-o", "--output", type=Path, required=True, help="the list with codes")
        parser.add_argument("--allow-short", action="store_true")
        parser.add_argument("--json", action="store_true", help="answer in JSON")

    def handle(self, *args, **options):
        pool = pool_named(options["pool"])
        path: Path = options["file"]
        output: Path = options["output"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        if not output.parent.is_dir():
            raise CommandError(f"{output.parent}: no such folder.")
        try:
            with path.open("rb") as handle:
                job = assignment_start(pool=pool, file=File(handle, name=path.name))
        except ValidationError as error:
            raise CommandError(
                f"{path.name}: {' '.join(error.messages)}", returncode=FAILED
            ) from error
        job = job_run_watched(
            job,
            lambda: assignments.assignment_run(assignment_id=job.pk),
            bar=on_terminal(options),
        )
        if job.status == Assignment.Status.FAILED:
            raise CommandError(f"The assignment failed: {job.message}", returncode=FAILED)
        with job.result.open("rb") as source, output.open("wb") as target:
            shutil.copyfileobj(source, target)
        data = {
            "assignment": job.pk,
            "pool": pool.slug,
            "status": job.status,
            "customers_read": job.customers_read,
            "codes_issued": job.codes_issued,
            "already_held": job.already_held,
            "from_fallback": job.from_fallback,
            "rows_rejected": job.rows_rejected,
            "shortfall": job.shortfall,
            "file": str(output),
        }
        answer(
            self,
            options,
            data,
            [
                f"Assignment #{job.pk} from {pool.slug}: {job.get_status_display()}.",
                f"Customers {job.customers_read}: new codes {job.codes_issued}, already held "
                f"{job.already_held}, rejected rows {job.rows_rejected}, left without a code "
                f"{job.shortfall}.",
                f"The list with codes: {output}",
            ],
        )
        if (job.rows_rejected or job.shortfall) and not options["allow_short"]:
            raise SystemExit(ROWS_REFUSED)
