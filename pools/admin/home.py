"""The admin's home page: pools' sections telling what needs attention."""

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html

from ..selectors import pools_below_threshold, pools_expiring_soon
from .parts import home_page


def _attention(request, title, rows) -> str:
    return render_to_string(
        "admin/pools/attention_section.html", {"title": title, "rows": rows}, request=request
    )


def low_stock_section(request) -> str:
    rows = [
        format_html(
            '<a href="{}">{}</a> ({}): {} left, alert below {}',
            reverse("admin:pools_pool_change", args=[pool.pk]),
            pool.slug,
            pool.campaign,
            f"{pool.codes_available:,}",
            f"{pool.notify_below:,}",
        )
        for pool in pools_below_threshold()
    ]
    return _attention(request, "Pools below their alert threshold", rows)


def expiring_section(request) -> str:
    rows = [
        format_html(
            '<a href="{}">{}</a> ({}): {} available codes stop within a week',
            reverse("admin:pools_pool_change", args=[pool.pk]),
            pool.slug,
            pool.campaign,
            f"{count:,}",
        )
        for pool, count in pools_expiring_soon()
    ]
    return _attention(request, "Codes expiring within a week", rows)


home_page.sections += [low_stock_section, expiring_section]
