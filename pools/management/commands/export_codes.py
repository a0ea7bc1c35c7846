"""`manage.py export_codes --pool ID -o FILE`: the export job, for a terminal or a script."""

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from pools.export_services import code_export_filters, code_export_run, code_export_start
from pools.management.terminal import FAILED, answer, job_run_watched, on_terminal, pool_named
from pools.models import Code, CodeExport


class Command(BaseCommand):
    help = (
        "Export a pool's codes (or those of one status) to a CSV or XLSX file, as the admin's "
        "export does. Exits 2 when the export failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--pool", required=True, help="the pool ID (or its number)")
        parser.add_argument("--status", choices=Code.Status.values, default="")
        parser.add_argument("--format", choices=CodeExport.Format.values, default="csv")
        parser.add_argument("-o", "--output", type=Path, required=True, help="the file to write")
        parser.add_argument("--json", action="store_true", help="answer in JSON")

    def handle(self, *args, **options):
        pool = pool_named(options["pool"])
        output: Path = options["output"]
        if not output.parent.is_dir():
            raise CommandError(f"{output.parent}: no such folder.")
        export = code_export_start(
            filters=code_export_filters(pool=pool.pk, status=options["status"]),
            file_format=options["format"],
        )
        export = job_run_watched(
            export, lambda: code_export_run(export_id=export.pk), bar=on_terminal(options)
        )
        if export.status != CodeExport.Status.COMPLETED:
            raise CommandError(f"The export failed: {export.message}", returncode=FAILED)
        with export.file.open("rb") as source, output.open("wb") as target:
            shutil.copyfileobj(source, target)
        answer(
            self,
            options,
            {"export": export.pk, "pool": pool.slug, "rows": export.rows_done, "file": str(output)},
            [f"Exported {export.rows_done} codes of {pool.slug} to {output}."],
        )
