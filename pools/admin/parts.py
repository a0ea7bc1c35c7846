"""Pieces every screen of the pools admin shares, and the registries other apps fill.

The apps above pools add their parts (inlines, page sections, object tools, home-page sections,
labels of additions) to the registries here from their own admin modules, so that pools imports
none of them.
"""

from django.contrib import admin, messages
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from ..models import Code, CodeAddition, Pool, Withdrawal
from ..selectors import pool_is_low

# Counted by the codes asked for: "Withdrew 1 of 1 code", "Withdrew 3 of 5 codes".
WITHDRAWN_DONE = ngettext_lazy(
    "Withdrew %(withdrawn)s of %(requested)s code from “%(pool)s”.",
    "Withdrew %(withdrawn)s of %(requested)s codes from “%(pool)s”.",
    "count",
)
WITHDRAW_QUEUED = ngettext_lazy(
    "The code of “%(pool)s” is being withdrawn in the background: this report shows the progress.",
    "The %(requested)s codes of “%(pool)s” are being withdrawn in the background: this report "
    "shows the progress.",
    "count",
)
WITHDRAW_LIST_QUEUED = _(
    "The codes of “%(file)s” are being withdrawn from “%(pool)s” in the background: this report "
    "shows the progress, and says what was wrong should the file not be read."
)


def number(value) -> str:
    """Return a count as the reader's language writes it: 1,234 in English, 1 234 in Russian."""
    return number_format(value, force_grouping=True)


class PageParts:
    """What the apps above pools add to its admin pages, so that pools imports none of them.

    Each app registers its parts from its own admin module, which the admin imports at start:
    inlines, and callables (request, obj) -> HTML for the Codes section of a pool's page and
    for the object tools beside "History".
    """

    def __init__(self):
        self.inlines: list[type[admin.options.InlineModelAdmin]] = []
        self.sections: list = []
        self.object_tools: list = []

    def render(self, parts, request, obj) -> str:
        return mark_safe("".join(str(part(request, obj)) for part in parts))


pool_page = PageParts()
campaign_page = PageParts()
# The admin's home page: sections are callables (request) -> HTML telling what needs attention
# (pools' own below; imports and notifications add theirs from their admin modules).
home_page = PageParts()
# How a code's page names the addition that brought it in: callables (addition) -> HTML or
# None; the imports app registers one naming the import.
addition_labels: list = []


def addition_label(addition: CodeAddition) -> str:
    for label in addition_labels:
        text = label(addition)
        if text:
            return text
    text = ngettext(
        "an addition of {count} code", "an addition of {count} codes", addition.codes_added
    )
    return format_html(text, count=number(addition.codes_added))


def status_badge(pool: Pool) -> str:
    return format_html(
        '<span class="pool-status pool-status-{}">{}</span>', pool.status, pool.get_status_display()
    )


def counts_line(pool: Pool) -> str:
    withdrawn = getattr(pool, "codes_withdrawn", 0)
    return format_html(
        gettext("{available} available · {issued} issued · {redeemed} redeemed{withdrawn}{badge}"),
        available=number(pool.codes_available),
        issued=number(pool.codes_issued),
        redeemed=number(pool.codes_redeemed),
        withdrawn=format_html(gettext(" · {count} withdrawn"), count=number(withdrawn))
        if withdrawn
        else "",
        badge=low_stock_badge(pool),
    )


def low_stock_badge(pool: Pool) -> str:
    """Return a badge when the pool is low on stock (pool_is_low: an active or paused pool
    that had codes, below its alert threshold), else nothing."""
    if pool_is_low(pool):
        return format_html(
            ' <span class="stock-low" title="{}">{}</span>',
            gettext("Alert when fewer than %(count)s codes are left")
            % {"count": number(pool.notify_below)},
            gettext("low stock"),
        )
    return ""


class PlainListTitle:
    """A list titled by what it lists ("Codes"), instead of Django's "Select code to change",
    which reads wrong for a list whose rows open a report or a read-only page. Mixed into a
    ModelAdmin before admin.ModelAdmin."""

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": capfirst(self.opts.verbose_name_plural), **(extra_context or {})}
        return super().changelist_view(request, extra_context)


class AdminMedia:
    css = {"all": ("pools/admin.css",)}


class ReadOnlyInline(admin.TabularInline):
    """Rows shown on a parent's page; they are written elsewhere (services, imports)."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


def can_export(request, pool: Pool | None) -> bool:
    """Return True if the user may export (and download) the codes of `pool` (of every pool
    when None): view permission on codes and on the pool."""
    pools = admin.site.get_model_admin(Pool)
    codes = admin.site.get_model_admin(Code)
    return codes.has_view_permission(request) and pools.has_view_permission(request, pool)


def tell_withdrawal(request, withdrawal: Withdrawal) -> None:
    messages.add_message(
        request,
        messages.SUCCESS if withdrawal.is_finished else messages.INFO,
        withdrawal_told(withdrawal),
    )


def withdrawal_told(withdrawal: Withdrawal) -> str:
    """Return what staff are told once they asked for a withdrawal: done, or under way."""
    values = {
        "withdrawn": number(withdrawal.codes_withdrawn),
        "requested": number(withdrawal.codes_requested),
        "pool": withdrawal.pool,
        "count": withdrawal.codes_requested,
    }
    if withdrawal.is_finished:
        return WITHDRAWN_DONE % values
    if withdrawal.list_file_name and not withdrawal.list_read:
        # The worker has not read the file yet: how many codes it holds is not known.
        return WITHDRAW_LIST_QUEUED % {"file": withdrawal.list_file_name, **values}
    return WITHDRAW_QUEUED % values
