"""Pieces every screen of the pools admin shares, and the registries other apps fill.

The apps above pools add their parts (inlines, page sections, object tools, home-page sections,
labels of additions) to the registries here from their own admin modules, so that pools imports
none of them.
"""

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from ..models import Code, CodeAddition, Pool, Withdrawal
from ..selectors import pool_is_low

WITHDRAWN_DONE = "Withdrew {withdrawn:,} of {requested:,} codes of “{pool}”."
WITHDRAW_QUEUED = (
    "The {requested:,} codes of “{pool}” are being withdrawn in the background: this report "
    "shows the progress."
)
WITHDRAW_LIST_QUEUED = (
    "The codes of “{file}” are being withdrawn from “{pool}” in the background: this report "
    "shows the progress, and says what was wrong should the file not be read."
)


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
    return format_html("an addition of {} codes", f"{addition.codes_added:,}")


def status_badge(pool: Pool) -> str:
    return format_html(
        '<span class="pool-status pool-status-{}">{}</span>', pool.status, pool.get_status_display()
    )


def counts_line(pool: Pool) -> str:
    withdrawn = getattr(pool, "codes_withdrawn", 0)
    return format_html(
        "{} available · {} issued · {} redeemed{}{}",
        f"{pool.codes_available:,}",
        f"{pool.codes_issued:,}",
        f"{pool.codes_redeemed:,}",
        format_html(" · {} withdrawn", f"{withdrawn:,}") if withdrawn else "",
        low_stock_badge(pool),
    )


def low_stock_badge(pool: Pool) -> str:
    """Return a badge when the pool is low on stock (pool_is_low: an active or paused pool
    that had codes, below its alert threshold), else nothing."""
    if pool_is_low(pool):
        return format_html(
            ' <span class="stock-low" title="Alert threshold: {}">low stock</span>',
            pool.notify_below,
        )
    return ""


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
    values = {
        "withdrawn": withdrawal.codes_withdrawn,
        "requested": withdrawal.codes_requested,
        "pool": withdrawal.pool,
    }
    if withdrawal.is_finished:
        messages.success(request, WITHDRAWN_DONE.format(**values))
    elif withdrawal.list_file_name and not withdrawal.list_read:
        # The worker has not read the file yet: how many codes it holds is not known.
        messages.info(
            request, WITHDRAW_LIST_QUEUED.format(file=withdrawal.list_file_name, **values)
        )
    else:
        messages.info(request, WITHDRAW_QUEUED.format(**values))
