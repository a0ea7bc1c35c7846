"""One format for numbers, dates and statuses, the same on screens, in e-mails and in exports.

Templates get the screen formats from promo_project/formats/en/formats.py (Django's
FORMAT_MODULE_PATH); Python code that writes text itself (exports, messages, file names) uses
these functions, so that "5,004" and "2026-11-27 22:19" read the same wherever they appear.
"""

from datetime import date, datetime

from django.utils import timezone
from django.utils.formats import number_format
from django.utils.text import slugify
from django.utils.translation import gettext

DATETIME_DISPLAY = "%Y-%m-%d %H:%M"


def number(value) -> str:
    """Return a count with the reader's thousands separators: 1234567 → "1,234,567" in English,
    "1 234 567" in Russian (promo_project/formats/<language>/formats.py)."""
    try:
        return number_format(int(value), force_grouping=True)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


def datetime_display(value: datetime | None) -> str:
    """Return a moment as screens and e-mails show it, in the project's time zone."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime(DATETIME_DISPLAY)


def datetime_export(value: datetime | None) -> str:
    """Return a moment as exports write it: ISO 8601 in the project's time zone, to the second,
    with a space between date and time, as PostgreSQL's COPY writes it (both export paths
    agree)."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    # isoformat pads every year to four digits, as COPY does; strftime("%Y") does not.
    return value.replace(microsecond=0, tzinfo=None).isoformat(sep=" ")


def export_value(value):
    """Return a cell of an export: moments in ISO 8601 without microseconds, the rest as is."""
    if isinstance(value, datetime):
        return datetime_export(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def duration_display(seconds: float | None) -> str:
    """Return how long something took: "0.4 s", "12 s", "3 min 5 s"."""
    if seconds is None:
        return "—"
    if seconds < 10:
        if seconds <= 0:
            return gettext("under 0.1 s")
        tenths = number_format(round(max(seconds, 0.1), 1), decimal_pos=1)
        return gettext("%(seconds)s s") % {"seconds": tenths}
    seconds = round(seconds)
    if seconds < 60:
        return gettext("%(seconds)s s") % {"seconds": seconds}
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        if rest:
            return gettext("%(minutes)s min %(seconds)s s") % {"minutes": minutes, "seconds": rest}
        return gettext("%(minutes)s min") % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    return gettext("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes}


def export_filename(*, what: str, pool=None, filters: dict | None = None, extension: str) -> str:
    """Return a file name that says what is in the file: codes-spring-sale-issued.csv.

    `filters` maps a filter's name to its value; each value that narrows the rows is named.
    """
    parts = [what, pool.slug if pool is not None else "all-pools"]
    for name, value in sorted((filters or {}).items()):
        if value not in (None, ""):
            parts.append(slugify(f"{name}-{value}")[:40].strip("-") or "filtered")
    return "-".join(p for p in parts if p) + f".{extension}"
