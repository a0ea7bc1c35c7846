"""The admin's home page: pools' sections telling what needs attention."""

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext

from ..selectors import pools_below_threshold, pools_expiring_soon
from .parts import home_page, number


def _attention(request, title, rows) -> str:
    return render_to_string(
        "admin/pools/attention_section.html", {"title": title, "rows": rows}, request=request
    )


def low_stock_section(request) -> str:
    rows = [
        format_html(
            ngettext(
                '<a href="{url}">{pool}</a> ({campaign}): {left} code left, alert below {below}',
                '<a href="{url}">{pool}</a> ({campaign}): {left} codes left, alert below {below}',
                pool.codes_available,
            ),
            url=reverse("admin:pools_pool_change", args=[pool.pk]),
            pool=pool.slug,
            campaign=pool.campaign,
            left=number(pool.codes_available),
            below=number(pool.notify_below),
        )
        for pool in pools_below_threshold()
    ]
    return _attention(request, gettext("Pools running low on codes"), rows)


def expiring_section(request) -> str:
    rows = [
        format_html(
            ngettext(
                '<a href="{url}">{pool}</a> ({campaign}): {count} available code expires '
                "within a week",
                '<a href="{url}">{pool}</a> ({campaign}): {count} available codes expire '
                "within a week",
                count,
            ),
            url=reverse("admin:pools_pool_change", args=[pool.pk]),
            pool=pool.slug,
            campaign=pool.campaign,
            count=number(count),
        )
        for pool, count in pools_expiring_soon()
    ]
    return _attention(request, gettext("Codes expiring within a week"), rows)


home_page.sections += [low_stock_section, expiring_section]
