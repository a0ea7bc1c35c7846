from django.conf import settings
from django.db import models
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext_lazy

from pools.jobs import Job
from pools.models import CodeAddition, Pool


def generated_name(count: int, *, refill: bool = False) -> str:
    """The name a generation's import goes by, in the current language: "1,000 generated codes"."""
    shown = number_format(count, force_grouping=True)
    if refill:
        return ngettext(
            "Refill: %(count)s generated code", "Refill: %(count)s generated codes", count
        ) % {"count": shown}
    return ngettext("%(count)s generated code", "%(count)s generated codes", count) % {
        "count": shown
    }


class Import(Job):
    """One background task that adds codes to a pool; its id is the "task number".

    The row is the source of truth for the task: status, progress, counts and who started it. The
    counts and `rows_done` are committed with each batch of codes, so a task that is run again
    after a crash resumes where the last committed batch ended.
    """

    class Source(models.TextChoices):
        FILE = "file", _("File upload")
        TEXT = "text", _("Pasted list")
        GENERATION = "generation", _("Generation")

    class Status(models.TextChoices):
        QUEUED = "queued", pgettext_lazy("job status", "Queued")
        RUNNING = "running", pgettext_lazy("job status", "Running")
        COMPLETED = "completed", pgettext_lazy("job status", "Completed")
        COMPLETED_WITH_ERRORS = "completed_with_errors", _("Completed with errors")
        FAILED = "failed", pgettext_lazy("job status", "Failed")

    MANUAL_SOURCES = (Source.FILE, Source.TEXT)
    FINISHED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.FAILED)

    pool = models.ForeignKey(
        Pool, verbose_name=_("pool"), on_delete=models.CASCADE, related_name="imports"
    )
    # The pool's record of the codes this import adds (the pool's chart counts them there).
    addition = models.OneToOneField(
        CodeAddition,
        verbose_name=_("addition of codes"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="import_job",
    )
    source = models.CharField(verbose_name=_("source"), max_length=16, choices=Source.choices)
    status = models.CharField(
        verbose_name=_("status"), max_length=32, choices=Status.choices, default=Status.QUEUED
    )
    file = models.FileField(verbose_name=_("file"), upload_to="imports/%Y/%m/", blank=True)
    file_name = models.CharField(verbose_name=_("file name"), max_length=255, blank=True)
    file_size = models.BigIntegerField(verbose_name=_("file size"), default=0)
    generation = models.JSONField(
        verbose_name=_("generation"),
        default=dict,
        blank=True,
        help_text=_("Count, length, alphabet and prefix of a generation."),
    )
    # A failure of the file itself (no Code column, damaged): running it again cannot help.
    needs_new_file = models.BooleanField(verbose_name=_("needs a new file"), default=False)
    # The order of day and month in slashed dates: "dmy", "mdy", or "" until the file says.
    date_order = models.CharField(verbose_name=_("date order"), max_length=3, blank=True)
    # A CSV's encoding as chosen or confirmed on the upload page ("" : judged by the worker).
    encoding = models.CharField(verbose_name=_("encoding"), max_length=32, blank=True)
    # The columns the manager picked (headers.ColumnMapping.as_json), when the header did not
    # name them; empty when the header did.
    column_mapping = models.JSONField(verbose_name=_("columns chosen"), default=dict, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    # The pool's highest code id when the import first started: a code with a higher id that a
    # row collides with was added by this import, so the row is a duplicate inside the file.
    code_watermark = models.BigIntegerField(
        verbose_name=_("highest code id at start"), null=True, blank=True
    )

    progress_done = models.BigIntegerField(verbose_name=_("progress done"), default=0)
    progress_total = models.BigIntegerField(verbose_name=_("progress total"), default=0)
    rows_done = models.BigIntegerField(
        verbose_name=_("rows done"), default=0, help_text=_("Rows read and committed so far.")
    )
    rows_read = models.BigIntegerField(verbose_name=_("rows read"), default=0)
    codes_added = models.BigIntegerField(verbose_name=_("codes added"), default=0)
    duplicates_in_file = models.BigIntegerField(
        verbose_name=_("duplicates inside the file"), default=0
    )
    already_in_pool = models.BigIntegerField(verbose_name=_("already in the pool"), default=0)
    rows_rejected = models.BigIntegerField(verbose_name=_("rows rejected"), default=0)
    # Blank rows and the template's example row: read, holding no code.
    rows_skipped = models.BigIntegerField(verbose_name=_("rows skipped"), default=0)
    # Codes added although their Issue-end or Available-till had already passed.
    codes_expired_on_arrival = models.BigIntegerField(
        verbose_name=_("added but already expired"), default=0
    )
    finished_notice_sent_at = models.DateTimeField(
        verbose_name=_("finish notice sent at"), null=True, blank=True
    )
    # Started by the pool itself when its stock fell below "keep at least" (imports/refill.py).
    refill = models.BooleanField(verbose_name=_("refill"), default=False)

    class Meta:
        verbose_name = _("import")
        verbose_name_plural = _("imports")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "-created_at"], name="import_pool_created")]

    def __str__(self):
        return f"#{self.pk}"

    @property
    def progress_percent(self) -> int:
        if self.status in (self.Status.COMPLETED, self.Status.COMPLETED_WITH_ERRORS):
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))

    @property
    def name_shown(self) -> str:
        """What the import is called on screens, in the reader's language: the file's name, or
        the pasted list or the generated codes (whose stored names were written in the
        language of whoever started them)."""
        if self.source == self.Source.TEXT:
            return str(self.Source.TEXT.label)
        if self.source == self.Source.GENERATION:
            return generated_name(self.generation.get("count") or 0, refill=self.refill)
        return self.file_name

    @property
    def rows_not_added(self) -> int:
        """The rows in the rejected rows' list: rejected, and duplicates inside the file."""
        return self.rows_rejected + self.duplicates_in_file

    @property
    def rows_accounted_for(self) -> int:
        """Every row read counts once here: the report's sum, equal to rows_read."""
        return (
            self.codes_added
            + self.already_in_pool
            + self.duplicates_in_file
            + self.rows_rejected
            + self.rows_skipped
        )

    @property
    def can_run_again(self) -> bool:
        """Return True if running the import again could succeed (a lost worker, a database
        outage), False for a failure of the file itself, which must be fixed and uploaded."""
        return self.status == self.Status.FAILED and not self.needs_new_file


class Upload(models.Model):
    """A file staged on a pool's "Add codes" page to be checked before it is imported, with the
    manager's choices for reading it. It becomes an import only through "Start the import"
    (services.upload_start); one never started is deleted with its file after a day
    (services.uploads_clean_stale)."""

    pool = models.ForeignKey(
        Pool, verbose_name=_("pool"), on_delete=models.CASCADE, related_name="uploads"
    )
    file = models.FileField(verbose_name=_("file"), upload_to="uploads/%Y/%m/")
    file_name = models.CharField(verbose_name=_("file name"), max_length=255)
    file_size = models.BigIntegerField(verbose_name=_("file size"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("uploaded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(verbose_name=_("uploaded at"), auto_now_add=True)
    # The manager's choices; blank: as the file says (the encoding judged, the date order
    # settled by the file, the columns found from the header).
    encoding = models.CharField(verbose_name=_("encoding"), max_length=32, blank=True)
    date_order = models.CharField(verbose_name=_("date order"), max_length=3, blank=True)
    # headers.ColumnMapping.as_json() and the file's number of columns ("width").
    column_mapping = models.JSONField(verbose_name=_("columns chosen"), default=dict, blank=True)
    import_job = models.OneToOneField(
        Import,
        verbose_name=_("import"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="upload",
    )

    class Meta:
        verbose_name = _("file to check")
        verbose_name_plural = _("files to check")
        ordering = ["-created_at", "-id"]
        # The stale uploads' sweep (never started, older than a day) reads by age.
        indexes = [models.Index(fields=["created_at"], name="upload_created")]

    def __str__(self):
        return self.file_name

    @property
    def is_started(self) -> bool:
        return self.import_job_id is not None


class Rejection(models.Model):
    """A row of an import that was not added, with the reason."""

    job = models.ForeignKey(
        Import, verbose_name=_("import"), on_delete=models.CASCADE, related_name="rejections"
    )
    row_number = models.BigIntegerField(verbose_name=_("row"))
    column = models.CharField(verbose_name=_("column"), max_length=64, blank=True)
    value = models.TextField(verbose_name=_("value"), blank=True)
    reason = models.CharField(verbose_name=_("reason"), max_length=255)
    # The row's cells in the template's columns, so that the rejected rows can be downloaded,
    # fixed and uploaded again.
    cells = models.JSONField(verbose_name=_("cells"), default=list)

    class Meta:
        verbose_name = _("rejected row")
        verbose_name_plural = _("rejected rows")
        ordering = ["job", "row_number", "id"]
        indexes = [models.Index(fields=["job", "row_number"], name="rejection_job_row")]

    def __str__(self):
        return f"row {self.row_number}: {self.reason}"


class Assignment(Job):
    """One job that issues a code of a pool to every customer of an uploaded list and hands
    the list back with a Code column; its id is the task number, its row the report.

    Lives in imports: it reads the uploaded list with imports' readers, and issues through the
    pools services (pools imports nothing from here). Counts and `rows_done` are committed with
    each batch's issues, so a job run again after a kill resumes after the last batch.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", pgettext_lazy("job status", "Queued")
        RUNNING = "running", pgettext_lazy("job status", "Running")
        COMPLETED = "completed", pgettext_lazy("job status", "Completed")
        COMPLETED_WITH_SHORTFALL = (
            "completed_with_shortfall",
            _("Completed, the pool ran out of codes"),
        )
        FAILED = "failed", pgettext_lazy("job status", "Failed")

    FINISHED = (Status.COMPLETED, Status.COMPLETED_WITH_SHORTFALL, Status.FAILED)
    # Rejected rows and customers left without a code kept for the report; the rest counted.
    SAMPLE = 1_000

    pool = models.ForeignKey(
        Pool, verbose_name=_("pool"), on_delete=models.CASCADE, related_name="assignments"
    )
    status = models.CharField(
        verbose_name=_("status"), max_length=32, choices=Status.choices, default=Status.QUEUED
    )
    file = models.FileField(verbose_name=_("file"), upload_to="assignments/%Y/%m/")
    file_name = models.CharField(verbose_name=_("file name"), max_length=255, blank=True)
    result = models.FileField(
        verbose_name=_("list with codes"), upload_to="assignments/%Y/%m/", blank=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), auto_now_add=True)
    progress_done = models.BigIntegerField(verbose_name=_("progress done"), default=0)
    progress_total = models.BigIntegerField(verbose_name=_("progress total"), default=0)
    rows_done = models.BigIntegerField(
        verbose_name=_("rows done"), default=0, help_text=_("Rows read and committed so far.")
    )
    customers_read = models.BigIntegerField(verbose_name=_("customers read"), default=0)
    codes_issued = models.BigIntegerField(verbose_name=_("codes issued"), default=0)
    already_held = models.BigIntegerField(verbose_name=_("already held a code"), default=0)
    # Of codes_issued: new codes to customers whose code was withdrawn or expired.
    codes_replaced = models.BigIntegerField(verbose_name=_("codes replaced"), default=0)
    # Rows of customers who redeemed their code of the pool: sent nothing.
    already_redeemed = models.BigIntegerField(verbose_name=_("already redeemed"), default=0)
    from_fallback = models.BigIntegerField(verbose_name=_("from the fallback pool"), default=0)
    rows_rejected = models.BigIntegerField(verbose_name=_("rows rejected"), default=0)
    shortfall = models.BigIntegerField(verbose_name=_("left without a code"), default=0)
    # [[row number, value, reason], …] and [customer, …], the first SAMPLE of each.
    rejected_sample = models.JSONField(
        verbose_name=_("rejected rows (sample)"), default=list, blank=True
    )
    short_sample = models.JSONField(
        verbose_name=_("customers left without a code (sample)"), default=list, blank=True
    )

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "-created_at"], name="assignment_pool_created")]

    def __str__(self):
        return f"#{self.pk}"

    @property
    def progress_percent(self) -> int:
        if self.status in (self.Status.COMPLETED, self.Status.COMPLETED_WITH_SHORTFALL):
            return 100
        if not self.progress_total:
            return 0
        return min(100, int(100 * self.progress_done / self.progress_total))
