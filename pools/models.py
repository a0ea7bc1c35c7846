"""The models of pools: campaigns, pools and their events, codes with their counters, issues and
redemptions, additions, withdrawals and exports, and what each API key may do.

Long because an app's models live in one module, as in Django's own apps
(django/contrib/auth/models.py): a dozen models whose constraints and cheap predicates refer to
each other, read together.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .health import ServiceBeat  # noqa: F401  (a model: its module keeps it with its checks)
from .jobs import Job
from .refusals import Refusal

CODE_MAX_LENGTH = 100
CUSTOMER_MAX_LENGTH = 200

# User-facing messages are constants so that the admin, the services and the tests agree on them.
DESCRIPTION_REQUIRED_FOR_LAUNCH = _("A description is required to launch the pool.")
ISSUE_CHECK_EXCLUDES_MULTIPLE_USE = _(
    "“Redeem only by the customer the code was issued to” and “Codes can be used more than "
    "once” cannot both be on."
)
VALIDITY_PERIOD_REQUIRED = _(
    "Set the validity period after issue when “Redeem only by the customer the code was issued "
    "to” is on."
)
NOTIFY_THRESHOLD_REQUIRED = _("Set how many codes left should trigger the low-stock alert.")
TEMPLATE_PARAMETER_INVALID = _(
    "Use letters, digits and underscores only, not starting with a digit (for example SPRING_SALE)."
)

REFILL_COUNT_REQUIRED = _("Say how many codes a refill generates.")
FALLBACK_NOT_ITSELF = _("A pool cannot be its own fallback.")
FALLBACK_SAME_CAMPAIGN = _("The fallback pool must belong to the same campaign.")

template_parameter_validator = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*\Z", TEMPLATE_PARAMETER_INVALID, code="invalid"
)


class Campaign(models.Model):
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")

    def __str__(self):
        return self.name


class Pool(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        ENDED = "ended", _("Ended")

    class Processing(models.TextChoices):
        INTERNAL = "internal", _("In this system (it checks and redeems the codes)")
        EXTERNAL = "external", _("Elsewhere (another system redeems the codes)")

    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="pools", verbose_name=_("campaign")
    )
    description = models.TextField(
        _("description"),
        blank=True,
        help_text=_(
            "Anything worth remembering about this pool, for example why it was created. "
            "Required to launch."
        ),
    )
    slug = models.SlugField(
        _("pool ID"),
        max_length=64,
        unique=True,
        help_text=_(
            "The pool's unique name for other systems. Filled in for you; can be changed until "
            "the pool is launched."
        ),
    )
    template_parameter = models.CharField(
        _("template parameter"),
        max_length=64,
        unique=True,
        validators=[template_parameter_validator],
        help_text=_("Message templates insert a code from this pool under this name."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    launched_at = models.DateTimeField(_("launched at"), null=True, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("launched by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # Set when the pool is ended with "stop redemptions too": codes already issued can then no
    # longer be redeemed either.
    redemptions_stopped = models.BooleanField(_("redemptions stopped"), default=False)

    processing = models.CharField(
        _("codes are checked and redeemed"),
        max_length=16,
        choices=Processing.choices,
        default=Processing.INTERNAL,
    )
    require_issue_before_redeem = models.BooleanField(
        _("redeem only by the customer the code was issued to"),
        default=False,
        help_text=_(
            "A code can then be redeemed only by the customer it was issued to, within the "
            "validity period after issue. Protects against fraud and guessing."
        ),
    )
    issued_validity_days = models.PositiveIntegerField(
        _("validity period after issue (days)"),
        null=True,
        blank=True,
        help_text=_("How many days after issue the customer can redeem the code."),
    )
    allow_multiple_use = models.BooleanField(
        _("codes can be used more than once"),
        default=False,
        help_text=_("Cannot be changed once the pool is launched."),
    )
    notify_below_enabled = models.BooleanField(_("send low-stock alerts"), default=False)
    notify_below = models.PositiveIntegerField(
        _("alert when fewer codes than this are left"),
        null=True,
        blank=True,
        help_text=_(
            "Subscribed staff get an e-mail when the stock falls below this number of codes."
        ),
    )
    # A pool filled by generation tops itself up (imports/refill.py).
    refill_below = models.PositiveIntegerField(
        _("keep at least this many codes"),
        null=True,
        blank=True,
        help_text=_(
            "When the stock falls below this, a generation of the size below runs by itself "
            "(within generation's limit). Only for pools filled by generation."
        ),
    )
    refill_count = models.PositiveIntegerField(
        _("codes to generate per refill"),
        null=True,
        blank=True,
    )
    # Where issuing turns when this pool has no issuable code (one hop: the fallback's
    # own fallback is not followed, so that pools naming each other cannot loop).
    fallback_pool = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("fallback pool"),
        help_text=_(
            "Issuing takes from this pool (same campaign, active) when this one has no code "
            "left to issue."
        ),
    )
    # Counted in the shared cache per calendar day (UTC) by the API's issuing limits
    # (pools/issuing_limits.py): a leaked key cannot drain the pool faster than this.
    daily_issue_cap = models.PositiveIntegerField(
        _("most codes issued over the API per day"),
        null=True,
        blank=True,
        help_text=_(
            "Once this many codes have been issued over the API today (UTC), issue and batch "
            "requests are refused until tomorrow. Assignments from the admin do not count. "
            "Leave empty for no limit."
        ),
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    # Other systems refer to these once the pool is live.
    FROZEN_WHEN_ACTIVE = ("slug", "template_parameter", "allow_multiple_use")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("pool")
        verbose_name_plural = _("pools")
        permissions = [
            ("launch_pool", "Can launch pool"),
            ("pause_pool", "Can pause and resume pool"),
            ("end_pool", "Can end pool"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(require_issue_before_redeem=True, allow_multiple_use=True),
                name="pool_issue_check_excludes_multiple_use",
                violation_error_message=ISSUE_CHECK_EXCLUDES_MULTIPLE_USE,
            ),
            models.CheckConstraint(
                condition=Q(require_issue_before_redeem=False) | Q(issued_validity_days__gt=0),
                name="pool_validity_period_when_issue_checked",
                violation_error_message=VALIDITY_PERIOD_REQUIRED,
            ),
            models.CheckConstraint(
                condition=Q(notify_below_enabled=False) | Q(notify_below__gt=0),
                name="pool_threshold_when_notifying",
                violation_error_message=NOTIFY_THRESHOLD_REQUIRED,
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | ~Q(description=""),
                name="pool_active_has_description",
                violation_error_message=DESCRIPTION_REQUIRED_FOR_LAUNCH,
            ),
        ]

    def __str__(self):
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def is_launched(self) -> bool:
        """Return True once the pool has been launched, whatever happened to it since."""
        return self.status != self.Status.DRAFT

    def issue_refusal(self) -> Refusal | None:
        """Return why this pool cannot issue (or mark as issued) a code now, or None."""
        return _STATUS_REFUSALS.get(self.status)

    def redeem_refusal(self) -> Refusal | None:
        """Return why no code of this pool can be redeemed now, whichever, or None.

        An ended pool still honours the codes it handed out unless its redemptions were
        stopped: that depends on the code (Code.redeem_refusal).
        """
        if self.status in (self.Status.DRAFT, self.Status.PAUSED) or (
            self.status == self.Status.ENDED and self.redemptions_stopped
        ):
            return self.issue_refusal()
        if self.processing == self.Processing.EXTERNAL:
            return Refusal.PROCESSED_EXTERNALLY
        return None

    def clean(self):
        # Reported against the fields, so that the admin form shows them where the user looks.
        errors = {}
        if self.require_issue_before_redeem and self.allow_multiple_use:
            # Once, under the second of the two options, rather than twice on the same page.
            errors["allow_multiple_use"] = ISSUE_CHECK_EXCLUDES_MULTIPLE_USE
        elif self.require_issue_before_redeem and not self.issued_validity_days:
            errors["issued_validity_days"] = VALIDITY_PERIOD_REQUIRED
        if self.notify_below_enabled and not self.notify_below:
            errors["notify_below"] = NOTIFY_THRESHOLD_REQUIRED
        if self.refill_below and not self.refill_count:
            errors["refill_count"] = REFILL_COUNT_REQUIRED
        if self.fallback_pool_id:
            if self.fallback_pool_id == self.pk:
                errors["fallback_pool"] = FALLBACK_NOT_ITSELF
            elif self.fallback_pool.campaign_id != self.campaign_id:
                errors["fallback_pool"] = FALLBACK_SAME_CAMPAIGN
        if self.is_launched:
            errors.update(self.launch_blockers())
        if errors:
            raise ValidationError(errors)

    def launch_blockers(self) -> dict[str, str]:
        """Return what stops this pool from being launched, by field; empty when it can be."""
        blockers = {}
        if not self.description.strip():
            blockers["description"] = DESCRIPTION_REQUIRED_FOR_LAUNCH
        return blockers

    def is_below_threshold(self, stock: int) -> bool:
        """Return True if the pool alerts on low stock and `stock` is below its threshold."""
        return bool(self.notify_below_enabled and self.notify_below) and stock < self.notify_below


_STATUS_REFUSALS = {
    Pool.Status.DRAFT: Refusal.POOL_NOT_ACTIVE,
    Pool.Status.PAUSED: Refusal.POOL_PAUSED,
    Pool.Status.ENDED: Refusal.POOL_ENDED,
}


class PoolEvent(models.Model):
    """A change of a pool's status (launch, pause, resume, end): who, when and why.

    Written by the services themselves rather than read from the admin's LogEntry, so that a
    pause from the shell or a task is in the pool's history as much as one from the admin
    (LogEntry needs a user and holds free text only).
    """

    class Action(models.TextChoices):
        LAUNCHED = "launched", _("Launched")
        PAUSED = "paused", _("Paused")
        RESUMED = "resumed", _("Resumed")
        ENDED = "ended", _("Ended")
        ENDED_AND_STOPPED = "ended_stopped", _("Ended, redemptions stopped too")

    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, related_name="events", verbose_name=_("pool")
    )
    action = models.CharField(_("what"), max_length=16, choices=Action.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    at = models.DateTimeField(_("when"), default=timezone.now)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("pool event")
        verbose_name_plural = _("pool events")
        indexes = [models.Index(fields=["pool", "-at"], name="pool_event_pool_time")]

    def __str__(self):
        return f"{self.pool}: {self.get_action_display()}"


class Code(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", _("Available")
        ISSUED = "issued", _("Issued")
        REDEEMED = "redeemed", _("Redeemed")
        EXPIRED = "expired", _("Expired")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    # What a withdrawal takes out of use; a single-use code already redeemed is used up.
    WITHDRAWABLE = (Status.AVAILABLE, Status.ISSUED, Status.EXPIRED)

    # Indexed by the (pool, id) index below, which also orders a pool's code list.
    # Set on the code an issue returns: True when it is a retry's, handed out before.
    again = False

    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, related_name="codes", db_index=False, verbose_name=_("pool")
    )
    code = models.CharField(_("code"), max_length=CODE_MAX_LENGTH)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.AVAILABLE
    )
    issue_start = models.DateTimeField(_("issue-start"), null=True, blank=True)
    issue_end = models.DateTimeField(_("issue-end"), null=True, blank=True)
    available_from = models.DateTimeField(_("available-from"), null=True, blank=True)
    available_till = models.DateTimeField(_("available-till"), null=True, blank=True)
    issued_to = models.CharField(
        _("customer"),
        max_length=CUSTOMER_MAX_LENGTH,
        blank=True,
        help_text=_("The customer's id in your systems."),
    )
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    redeemed_at = models.DateTimeField(_("redeemed at"), null=True, blank=True)
    times_redeemed = models.PositiveIntegerField(_("times redeemed"), default=0)
    # Which addition (an import, in the imports app) brought the code in; null for codes added
    # before additions were recorded on codes. DO_NOTHING: an addition is deleted only with its
    # pool, which deletes the codes in the same statement set.
    # No foreign key in the database: PostgreSQL checks one for each code written, a large share
    # of an import's time (see the commit that dropped it). Only the imports' loader writes this
    # column, with the addition it created first, and no addition is deleted before its codes.
    addition = models.ForeignKey(
        "CodeAddition",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="codes",
        db_index=False,
        db_constraint=False,
    )
    withdrawal = models.ForeignKey(
        "Withdrawal",
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="codes",
        db_index=False,
    )

    # A code's row in the admin's list and in exports.
    LISTED_FIELDS = (
        "code",
        "pool",
        "status",
        "issued_to",
        "issued_at",
        "redeemed_at",
        "times_redeemed",
        "issue_start",
        "issue_end",
        "available_from",
        "available_till",
    )

    class Meta:
        constraints = [
            # (code, pool) rather than (pool, code): the same index then finds a code string
            # across pools, which redemption needs. The pattern operator class lets it serve a
            # prefix search (LIKE 'ABC%') too, whatever the database's collation, so that no
            # second index on the code is written on every import and every issue. (Ignored on
            # SQLite.)
            models.UniqueConstraint(
                fields=["code", "pool"],
                name="code_unique_in_pool",
                opclasses=["varchar_pattern_ops", "int8_ops"],
            ),
            models.CheckConstraint(
                condition=Q(issue_start__isnull=True)
                | Q(issue_end__isnull=True)
                | Q(issue_end__gte=models.F("issue_start")),
                name="code_issue_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(available_from__isnull=True)
                | Q(available_till__isnull=True)
                | Q(available_till__gte=models.F("available_from")),
                name="code_available_till_after_from",
            ),
        ]
        indexes = [
            models.Index(fields=["pool", "id"], name="code_pool_id"),
            # Finds a pool's available codes without scanning the used ones.
            models.Index(fields=["pool", "status", "id"], name="code_pool_status_id"),
            # The codes list filtered by a status over all pools, newest first: for a status
            # with few codes or none, the primary key walked backwards read the whole table.
            # Available and issued codes, the many, are left out, so issuing never writes here.
            models.Index(
                fields=["status", "id"],
                name="code_settled_status_id",
                condition=Q(status__in=["redeemed", "expired", "withdrawn"]),
            ),
            # Undoing an addition walks its codes in id order; the status is included so that
            # counting them by status (the undo's confirmation) reads the index alone.
            models.Index(
                fields=["addition", "id"],
                include=["status"],
                name="code_addition_id",
                condition=Q(addition__isnull=False),
            ),
            # "Codes expiring within a week" on the home page: only available codes with a date
            # are in these, so code-only imports do not pay for them.
            models.Index(
                fields=["available_till"],
                name="code_available_till_soon",
                condition=Q(status="available", available_till__isnull=False),
            ),
            models.Index(
                fields=["issue_end"],
                name="code_issue_end_soon",
                condition=Q(status="available", issue_end__isnull=False),
            ),
        ]
        permissions = [("withdraw_code", "Can withdraw code")]
        verbose_name = _("code")
        verbose_name_plural = _("codes")

    def __str__(self):
        return self.code

    def redeem_refusal(self, customer: str, at=None) -> Refusal | None:
        """Return why `customer` cannot redeem this code now (or at `at`), or None if they can.

        Check, redeem and the admin all ask this one question; `self.pool` must be loaded.
        """
        at = at or timezone.now()
        pool = self.pool
        # Where codes are personal, whose code it is comes before anything about the code or
        # its pool, so that someone else learns nothing of it (not even that it was redeemed,
        # expired or withdrawn, or that its pool is paused).
        if not self.is_held_by(customer):
            return Refusal.NOT_ISSUED_TO_CUSTOMER
        refusal = pool.redeem_refusal()
        if refusal:
            return refusal
        if self.status == Code.Status.WITHDRAWN:
            return Refusal.WITHDRAWN
        if pool.status == Pool.Status.ENDED and not self.was_issued(customer):
            # An ended pool honours the codes it handed out, until their Available-till.
            return Refusal.POOL_ENDED
        if self.available_from and at < self.available_from:
            return Refusal.NOT_YET_AVAILABLE
        over = [refusal for end, refusal in self.redeem_ends() if at > end]
        # Past its Available-till, a code is expired whatever else is true of it; past the
        # validity period only, a redeemed one is told as redeemed.
        if Refusal.EXPIRED in over:
            return Refusal.EXPIRED
        if self.status == Code.Status.REDEEMED:
            return Refusal.ALREADY_REDEEMED
        return over[0] if over else None

    def redeem_ends(self) -> list[tuple]:
        """Return the moments after which this code can no longer be redeemed, each with the
        refusal given after it: its Available-till, and the end of the validity period after
        issue where the pool asks for issue before redemption (once the code is issued).

        redeem_refusal asks this, and so do the code's page and the API's answers
        (valid_until), so that what they say is what redemption does.
        """
        ends = []
        if self.available_till:
            ends.append((self.available_till, Refusal.EXPIRED))
        pool = self.pool
        if pool.require_issue_before_redeem and self.issued_at and pool.issued_validity_days:
            ends.append(
                (
                    self.issued_at + timedelta(days=pool.issued_validity_days),
                    Refusal.VALIDITY_PERIOD_OVER,
                )
            )
        return ends

    @property
    def valid_until(self):
        """The last moment this code can be redeemed by its dates, or None if none ends it."""
        ends = self.redeem_ends()
        return min(end for end, _ in ends) if ends else None

    def is_held_by(self, customer: str) -> bool:
        """Return False if codes of the pool are personal (issued before redemption) and this
        one is not `customer`'s: then only its issuer may hear anything of it."""
        return not self.pool.require_issue_before_redeem or (
            self.status in (Code.Status.ISSUED, Code.Status.REDEEMED, Code.Status.WITHDRAWN)
            and self.issued_to == customer
        )

    def was_issued(self, customer: str) -> bool:
        """Return True if this code was handed out (to `customer`, for a multiple-use code)."""
        if not self.pool.allow_multiple_use:
            return self.status in (Code.Status.ISSUED, Code.Status.REDEEMED)
        return self.issues.filter(customer=customer).exists()


class PoolCounter(models.Model):
    """A share of a pool's code counts by status.

    Counts are kept as deltas in a few rows per pool (``shard``) so that concurrent writers do not
    queue on one row lock; a pool's counts are the sums over its rows. This keeps the admin free of
    COUNT(*) over millions of codes.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="counters")
    shard = models.PositiveSmallIntegerField()
    available = models.BigIntegerField(default=0)
    issued = models.BigIntegerField(default=0)
    redeemed = models.BigIntegerField(default=0)
    # db_default: statements that write the other counts directly leave this one out.
    expired = models.BigIntegerField(default=0, db_default=0)
    withdrawn = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pool", "shard"], name="pool_counter_unique_shard")
        ]
        verbose_name = _("pool counter")
        verbose_name_plural = _("pool counters")

    def __str__(self):
        return f"{self.pool_id}/{self.shard}"


class CodeIssue(models.Model):
    """A code handed to a customer: by `code_issue`, or marked as issued when handed out
    elsewhere. A multiple-use code can be handed to many customers."""

    # No index of their own: code_issue_pool_time and code_issue_code_customer begin with them,
    # and every index is written once more for each code issued (an assignment of a million
    # customers).
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="+", db_index=False)
    # DO_NOTHING: codes with a history are never deleted (the database refuses), and codes
    # without one can then be deleted in one statement with their pool.
    code = models.ForeignKey(
        Code, on_delete=models.DO_NOTHING, related_name="issues", db_index=False
    )
    customer = models.CharField(max_length=CUSTOMER_MAX_LENGTH)
    idempotency_key = models.CharField(max_length=200, blank=True)
    # Who issued or marked it: an API key's prefix over HTTP, empty from the admin and the shell.
    # A refusal tells this caller why; others hear that there is no such code.
    issued_by = models.CharField(max_length=150, blank=True, default="", db_default="")
    marked = models.BooleanField(
        _("marked as issued"),
        default=False,
        help_text=_("Handed out elsewhere and marked as issued here."),
    )
    issued_at = models.DateTimeField(default=timezone.now)
    # Given back (code_release): the code went back to stock and the key was freed, so that a
    # retry under it issues anew rather than naming a code someone else may hold by then.
    released_at = models.DateTimeField(null=True, blank=True)
    released_key = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-issued_at", "-id"]
        verbose_name = _("code issue")
        verbose_name_plural = _("code issues")
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="code_issue_key_unique_in_pool",
            )
        ]
        indexes = [
            models.Index(fields=["code", "customer"], name="code_issue_code_customer"),
            # "Which code did customer cust-3 get?" on the codes list.
            models.Index(fields=["customer"], name="code_issue_customer"),
            models.Index(fields=["pool", "issued_at"], name="code_issue_pool_time"),
        ]

    def __str__(self):
        return f"{self.code} → {self.customer}"


class Redemption(models.Model):
    """One use of a code by a customer."""

    code = models.ForeignKey(Code, on_delete=models.DO_NOTHING, related_name="redemptions")
    customer = models.CharField(max_length=CUSTOMER_MAX_LENGTH)
    order_reference = models.CharField(max_length=200, blank=True)
    redeemed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-redeemed_at", "-id"]
        verbose_name = _("redemption")
        verbose_name_plural = _("redemptions")
        constraints = [
            models.UniqueConstraint(
                fields=["code", "order_reference"],
                condition=~Q(order_reference=""),
                name="redemption_order_unique_per_code",
            )
        ]

    def __str__(self):
        return f"{self.code} by {self.customer}"


class CodeAddition(models.Model):
    """One addition of codes to a pool: an upload, a pasted list or a generation run.

    Whatever adds the codes (an import, in the imports app) points to its addition, so that the
    pool's own screens count what was added when without knowing about imports.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="additions")
    codes_added = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    # When codes were last added: the day the stock chart counts them on.
    added_at = models.DateTimeField(null=True, blank=True)
    # Undo: how many of its codes were removed again (still available ones), when and by whom.
    codes_removed = models.BigIntegerField(default=0)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "added_at"], name="code_addition_pool_time")]
        permissions = [("undo_codeaddition", "Can remove the codes an import added")]
        verbose_name = _("addition of codes")
        verbose_name_plural = _("additions of codes")

    def __str__(self):
        count = self.codes_added
        text = ngettext(
            "%(count)s code added to %(pool)s", "%(count)s codes added to %(pool)s", count
        )
        return text % {"count": number_format(count, force_grouping=True), "pool": self.pool}


class AdditionUndo(Job):
    """One undo of an addition of codes (an import's): a job that removes the codes the addition
    brought in that were never handed out, slice by slice, and keeps the others; its row is the
    report. Started from the import's report; a worker runs it."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")

    FINISHED = (Status.COMPLETED, Status.FAILED)
    # No Run again here: removing codes is asked for on the import's report.
    GO_ON = _("Ask for the removal again on the import's report to go on.")

    addition = models.ForeignKey(
        CodeAddition, on_delete=models.CASCADE, related_name="undos", verbose_name=_("addition")
    )
    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, related_name="undos", verbose_name=_("pool")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("started at"), default=timezone.now)
    # The addition's codes walked so far, in id order, and the last id walked: a job run again
    # goes on after it.
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(default=0)
    removed = models.BigIntegerField(_("codes removed"), default=0)
    # What was kept, counted when the job ends: codes with a history.
    kept_issued = models.BigIntegerField(default=0)
    kept_redeemed = models.BigIntegerField(default=0)
    kept_withdrawn = models.BigIntegerField(default=0)
    kept_used = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["addition", "-created_at"], name="undo_addition_created")]
        verbose_name = _("undo of an import")
        verbose_name_plural = _("undos of imports")

    def __str__(self):
        return _("undo #%(number)s") % {"number": self.pk}

    @property
    def kept(self) -> int:
        return self.kept_issued + self.kept_redeemed + self.kept_withdrawn + self.kept_used

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.progress_total:
            return 0
        return min(99, self.progress_done * 100 // self.progress_total)


class Withdrawal(Job):
    """One withdrawal of codes (leaked ones, say) from a pool: a single code, a selection, or a
    pasted or uploaded list. A long list is a job that a worker runs; its row is its report."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")

    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, related_name="withdrawals", verbose_name=_("pool")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    reason = models.TextField(_("reason"), blank=True)
    # The codes asked for, one a line (kept for a queued job and for the report).
    requested = models.TextField(blank=True)
    # An uploaded list, stored by the request and read by the worker into `requested` (then
    # deleted: from there on the row holds the codes, and a resumed job reads them there).
    list_file = models.FileField(upload_to="withdrawals/%Y/%m/", blank=True)
    list_file_name = models.CharField(max_length=255, blank=True)
    # Set in the transaction that wrote the list's codes into `requested`: an attempt after a
    # killed one reads the file again only if this is not set.
    list_read = models.BooleanField(default=False)
    # A failure of the uploaded list itself (not text, no codes): running it again cannot help.
    needs_new_file = models.BooleanField(default=False)
    codes_requested = models.BigIntegerField(_("codes asked for"), default=0)
    # How many of the requested codes were dealt with and committed: a job run again resumes.
    codes_done = models.BigIntegerField(default=0)
    codes_withdrawn = models.BigIntegerField(_("codes withdrawn"), default=0)
    # Of them, how many were in stock (the chart's stock line drops by these).
    from_stock = models.BigIntegerField(default=0)
    already_withdrawn = models.BigIntegerField(default=0)
    already_redeemed = models.BigIntegerField(default=0)
    not_found = models.BigIntegerField(default=0)
    # The first codes not found, for the report.
    not_found_sample = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("withdrawn by"),
    )
    created_at = models.DateTimeField(_("withdrawn at"), default=timezone.now)

    FINISHED = (Status.COMPLETED, Status.FAILED)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["pool", "-created_at"], name="withdrawal_pool_created")]
        verbose_name = _("withdrawal")
        verbose_name_plural = _("withdrawals")

    def __str__(self):
        return _("withdrawal #%(number)s") % {"number": self.pk}

    @property
    def can_run_again(self) -> bool:
        """True for a failure that running it again can get past (an error, an outage), False
        for a failure of the uploaded list itself, which must be fixed and uploaded again."""
        return self.status == self.Status.FAILED and not self.needs_new_file

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.codes_requested:
            return 0
        return min(99, self.codes_done * 100 // self.codes_requested)


class CodeExport(Job):
    """One background job that writes codes (all, a pool's, or a filter of the codes list), or
    another app's rows of a pool (an import's rejected rows), to a file to download; its id is
    the "task number".

    The row owns the job: status, progress and the point to resume from (`last_id`, and the
    file's size then, `bytes_done`) are committed with each chunk, so a job run again after a
    kill goes on from the last committed chunk.
    """

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        REMOVED = "removed", _("File removed (no longer kept)")

    FINISHED = (Status.COMPLETED, Status.FAILED, Status.REMOVED)
    # An export has no Run again: a new file is asked for where the first was.
    GO_ON = _("Ask for the file again to go on.")
    CODES = "codes"

    pool = models.ForeignKey(
        Pool,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="exports",
        verbose_name=_("pool"),
    )
    file_format = models.CharField(_("file format"), max_length=8, choices=Format.choices)
    # What is written: codes, or the rows of a source another app registers
    # (export_services.export_source_register), such as an import's rejected rows.
    source = models.CharField(max_length=32, default=CODES)
    # Which rows: for codes, the codes list's filters (pool, status and the searched code);
    # for another source, what that source reads (an import's id).
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    rows_total = models.BigIntegerField(default=0, help_text=_("Estimated when the job starts."))
    rows_done = models.BigIntegerField(default=0)
    # Codes: the id the next chunk starts from; another source: the key of the last row written.
    last_id = models.BigIntegerField(null=True, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    file = models.FileField(upload_to="exports/", blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("asked for by"),
    )
    created_at = models.DateTimeField(_("asked for at"), auto_now_add=True)
    # The file is deleted by the beat task (pools.tasks.code_exports_clean) after this.
    expires_at = models.DateTimeField(null=True, blank=True)
    finished_notice_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="code_export_status")]
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self):
        return _("Export #%(number)s") % {"number": self.pk}

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.rows_total:
            return 0
        return min(99, self.rows_done * 100 // self.rows_total)


class ApiOperation(models.TextChoices):
    """What an API key may be allowed to call (ApiKeyScope.operations)."""

    ISSUE = "issue", _("Issue a code")
    ISSUE_BATCH = "issue-batch", _("Issue codes to a batch of customers")
    STOCK = "stock", _("Read a pool's stock")
    MARK_ISSUED = "mark-issued", _("Mark a code as issued")
    CHECK = "check", _("Check a code")
    REDEEM = "redeem", _("Redeem a code")
    RELEASE = "release", _("Give an issued code back")


class ApiKeyScope(models.Model):
    """What one API key may do: the operations it may call, and every pool or only the pools
    of some campaigns and some pools. A key without a scope may do nothing, so that
    a key made in the shell or by a script holds no rights until someone grants them; keys that
    existed before scopes were given every operation (migration 0015)."""

    api_key = models.OneToOneField(
        "rest_framework_api_key.APIKey", on_delete=models.CASCADE, related_name="scope"
    )
    operations = models.JSONField(_("may call"), default=list, blank=True)
    # Not "no campaign and no pool named": those can be deleted, and a key kept to them must
    # not widen to every pool then.
    every_pool = models.BooleanField(
        _("may use every pool"),
        default=False,
        help_text=_(
            "Today's pools and future ones. Untick to limit the key to the campaigns and pools "
            "below."
        ),
    )
    campaigns = models.ManyToManyField(
        Campaign,
        blank=True,
        related_name="+",
        verbose_name=_("campaigns"),
        help_text=_("The key may use every pool of these campaigns, today's and future ones."),
    )
    pools = models.ManyToManyField(
        Pool,
        blank=True,
        related_name="+",
        verbose_name=_("pools"),
        help_text=_("And these pools."),
    )

    class Meta:
        verbose_name = _("API key scope")
        verbose_name_plural = _("API key scopes")

    def __str__(self):
        return _("Scope of %(key)s") % {"key": self.api_key_id}
