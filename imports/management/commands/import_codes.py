"""`manage.py import_codes FILE --pool ID`: the admin's file import, from a terminal or a script."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from imports import engine
from imports.models import Import
from imports.preview import Question
from imports.selectors import rejected_row
from imports.services import FileQuestion, import_file_start
from pools.management.terminal import (
    FAILED,
    ROWS_REFUSED,
    answer,
    job_run_watched,
    on_terminal,
    pool_named,
)

REJECTED_SHOWN = 20


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file of codes into a pool, as the admin's upload does (the same "
        "reading, checks and report). Exits 0 when every row was accounted for, 1 when rows were "
        "rejected (0 with --allow-rejected), 2 when the import failed or the file was refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--pool", required=True, help="the pool ID (or its number)")
        parser.add_argument("--date-order", choices=["dmy", "mdy"], default="")
        parser.add_argument("--encoding", default="", help="a CSV's encoding, e.g. cp1251")
        parser.add_argument("--user", default="", help="the staff member the import is by")
        parser.add_argument("--allow-rejected", action="store_true")
        parser.add_argument("--json", action="store_true", help="answer in JSON")

    def handle(self, *args, **options):
        pool = pool_named(options["pool"])
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No staff member is named {options['user']!r}.")
        try:
            with path.open("rb") as handle:
                job = import_file_start(
                    pool=pool,
                    file=File(handle, name=path.name),
                    user=user,
                    date_order=options["date_order"],
                    encoding=options["encoding"],
                )
        except FileQuestion as question:
            hint = {
                Question.DATE_ORDER: "--date-order dmy or mdy",
                Question.ENCODING: "--encoding NAME",
            }.get(question.question, "the admin's upload page, where the columns can be chosen")
            raise CommandError(
                f"{path.name}: {question.text} Answer with {hint}.", returncode=FAILED
            ) from question
        except ValidationError as error:
            raise CommandError(
                f"{path.name}: {' '.join(error.messages)}", returncode=FAILED
            ) from error

        job = job_run_watched(
            job, lambda: engine.import_run(import_id=job.pk), bar=on_terminal(options)
        )
        rejected = [rejected_row(r)[-1] for r in job.rejections.all()[:REJECTED_SHOWN]]
        data = {
            "import": job.pk,
            "pool": pool.slug,
            "status": job.status,
            "rows_read": job.rows_read,
            "codes_added": job.codes_added,
            "already_in_pool": job.already_in_pool,
            "duplicates_in_file": job.duplicates_in_file,
            "rows_rejected": job.rows_rejected,
            "rows_skipped": job.rows_skipped,
            "message": job.message,
            "rejected": rejected,
        }
        lines = [
            f"Import #{job.pk} into {pool.slug}: {job.get_status_display()}.",
            f"Rows read {job.rows_read}: added {job.codes_added}, already in the pool "
            f"{job.already_in_pool}, duplicates in the file {job.duplicates_in_file}, rejected "
            f"{job.rows_rejected}, skipped {job.rows_skipped}.",
            *([job.message] if job.message else []),
            *rejected,
        ]
        if job.rows_not_added > len(rejected):
            lines.append(f"… the import's report in the admin lists all {job.rows_not_added}.")
        answer(self, options, data, lines)
        if job.status == Import.Status.FAILED:
            raise CommandError("The import failed.", returncode=FAILED)
        if job.rows_not_added and not options["allow_rejected"]:
            raise SystemExit(ROWS_REFUSED)
