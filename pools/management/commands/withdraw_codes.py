"""`manage.py withdraw_codes FILE --pool ID`: a withdrawal of listed codes, for a script."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from pools.code_services import withdrawal_file_start, withdrawal_run
from pools.management.terminal import FAILED, answer, job_run_watched, on_terminal, pool_named
from pools.models import Withdrawal


class Command(BaseCommand):
    help = (
        "Withdraw for good the codes listed in a text or CSV file (one a line, or the Code "
        "column), as the admin's withdrawal does: check and redeem refuse them from then on. "
        "Exits 2 when the list was refused or the withdrawal failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--pool", required=True, help="the pool ID (or its number)")
        parser.add_argument("--reason", default="", help="kept on the withdrawal's report")
        parser.add_argument("--json", action="store_true", help="answer in JSON")

    def handle(self, *args, **options):
        pool = pool_named(options["pool"])
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            with path.open("rb") as handle:
                job = withdrawal_file_start(
                    pool=pool, file=File(handle, name=path.name), reason=options["reason"]
                )
        except ValidationError as error:
            raise CommandError(
                f"{path.name}: {' '.join(error.messages)}", returncode=FAILED
            ) from error
        job = job_run_watched(
            job, lambda: withdrawal_run(withdrawal_id=job.pk), bar=on_terminal(options)
        )
        if job.status == Withdrawal.Status.FAILED:
            raise CommandError(f"The withdrawal failed: {job.message}", returncode=FAILED)
        data = {
            "withdrawal": job.pk,
            "pool": pool.slug,
            "codes_requested": job.codes_requested,
            "codes_withdrawn": job.codes_withdrawn,
            "already_withdrawn": job.already_withdrawn,
            "already_redeemed": job.already_redeemed,
            "not_found": job.not_found,
        }
        answer(
            self,
            options,
            data,
            [
                f"Withdrawal #{job.pk} from {pool.slug}: {job.codes_withdrawn} of "
                f"{job.codes_requested} listed codes withdrawn; already withdrawn "
                f"{job.already_withdrawn}, already redeemed {job.already_redeemed}, not in the "
                f"pool {job.not_found}."
            ],
        )
