"""What a code's page says of when the code can be issued and redeemed: in words, from the
same rules issuing and redemption apply (claims.ISSUABLE_NOW, Code.redeem_refusal through
Code.redeem_ends and Code.valid_until)."""

from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ..models import Code, Pool
from ..refusals import Refusal


def _moment(value) -> str:
    return formats.date_format(timezone.localtime(value), "DATETIME_FORMAT")


def _window(start, end) -> str:
    """Return "From … until …." with the bounds that are set, or "Any time."."""
    if start and end:
        return _("From %(start)s until %(end)s.") % {"start": _moment(start), "end": _moment(end)}
    if start:
        return _("From %(start)s.") % {"start": _moment(start)}
    if end:
        return _("Until %(end)s.") % {"end": _moment(end)}
    return _("Any time.")


def _while_pool(pool: Pool) -> list[str]:
    if pool.status == Pool.Status.DRAFT:
        return [_("Only once the pool is launched.")]
    if pool.status == Pool.Status.PAUSED:
        return [_("Not while the pool is paused.")]
    return []


def code_issue_window(code: Code) -> str:
    """Return when the code can be issued, as issuing decides it (claims.ISSUABLE_NOW): an
    available code of an active pool, from its Issue-start until the earlier of its Issue-end
    and Available-till."""
    pool = code.pool
    if code.status == Code.Status.WITHDRAWN:
        return _("No: the code is withdrawn.")
    if code.status == Code.Status.EXPIRED:
        return _("No: the code expired.")
    if code.status == Code.Status.REDEEMED:
        return _("No: the code is redeemed.")
    if code.status == Code.Status.ISSUED:
        return _("No: the code is issued.")
    if pool.status == Pool.Status.ENDED:
        return _("No: the pool has ended.")
    ends = [end for end in (code.issue_end, code.available_till) if end]
    end = min(ends) if ends else None
    if end and end < timezone.now():
        return _("No: it could be issued until %(end)s.") % {"end": _moment(end)}
    return " ".join([_window(code.issue_start, end), *_while_pool(pool)])


def code_redeem_window(code: Code) -> str:
    """Return when the code can be redeemed, as redemption decides it: its Available-from, and
    Code.valid_until (Available-till and the validity period after issue, the same ends
    Code.redeem_refusal checks)."""
    pool = code.pool
    if pool.processing == Pool.Processing.EXTERNAL:
        return _("Not here: another system redeems this pool's codes.")
    if code.status == Code.Status.WITHDRAWN:
        return _("No: the code is withdrawn.")
    if code.status == Code.Status.EXPIRED:
        return _("No: the code expired.")
    if code.status == Code.Status.REDEEMED and not pool.allow_multiple_use:
        return _("No: the code is redeemed.")
    if pool.status == Pool.Status.ENDED:
        if pool.redemptions_stopped:
            return _("No: the pool has ended and its redemptions were stopped.")
        if code.status != Code.Status.ISSUED and not pool.allow_multiple_use:
            return _("No: the pool has ended.")
    days = pool.issued_validity_days
    if pool.require_issue_before_redeem and code.status == Code.Status.AVAILABLE:
        # Not issued yet: its validity period starts with its issue.
        said = [
            ngettext(
                "Once issued, by that customer only, for %(days)s day after the issue.",
                "Once issued, by that customer only, for %(days)s days after the issue.",
                days,
            )
            % {"days": days}
        ]
        if code.available_from or code.available_till:
            said.append(_window(code.available_from, code.available_till))
        return " ".join(said + _while_pool(pool))
    until = code.valid_until
    if until and until < timezone.now():
        return _("No: it was valid until %(end)s.") % {"end": _moment(until)}
    said = [_window(code.available_from, until)]
    ends = dict(code.redeem_ends())
    if until and ends.get(until) == Refusal.VALIDITY_PERIOD_OVER:
        said.append(
            ngettext(
                "That is %(days)s day after its issue.",
                "That is %(days)s days after its issue.",
                days,
            )
            % {"days": days}
        )
    if pool.status == Pool.Status.ENDED and pool.allow_multiple_use:
        said.append(_("Only by the customers it was issued to: the pool has ended."))
    return " ".join(said + _while_pool(pool))
