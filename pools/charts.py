"""The stock chart of a pool's page: an SVG drawn on the server, readable without JavaScript.

Readable at any scale: the stock has its own panel and axis, and each kind of activity (added,
issued, given back, redeemed, withdrawn) its own row with its own scale, so that a 5,000-code
import does not flatten ten issues a day into nothing. Every bar and point says its number on
hover (SVG <title>) and the table beneath lists them all. Days before the pool was created have
no stock point: the line starts on the day the pool did.
"""

from django.template.loader import render_to_string
from django.utils.formats import date_format
from django.utils.translation import gettext, pgettext_lazy

from .formats import number

WIDTH, PAD_LEFT, PAD_RIGHT = 640, 96, 16
STOCK_TOP, STOCK_HEIGHT = 22, 90
ROW_HEIGHT, ROW_GAP = 34, 8
# Each kind of activity: its key in pool_daily_activity's days, its colour, its label.
SERIES = (
    ("added", "#3a8a4f", pgettext_lazy("stock chart", "added")),
    ("issued", "#2f6db5", pgettext_lazy("stock chart", "issued")),
    ("released", "#5a6b7a", pgettext_lazy("stock chart", "given back")),
    ("redeemed", "#b35c00", pgettext_lazy("stock chart", "redeemed")),
    ("withdrawn", "#8a1111", pgettext_lazy("stock chart", "withdrawn")),
)
RANGES = (7, 30, 90)
DEFAULT_RANGE = 30


def chart_range(value) -> int:
    """Return the number of days the chart shows for a ?chart= value, the default if unknown."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_RANGE
    return days if days in RANGES else DEFAULT_RANGE


def stock_chart_svg(activity: list[dict], *, chosen: int = DEFAULT_RANGE) -> str:
    """Return an SVG of the stock line on its own axis and one row of daily bars per activity."""
    days = len(activity)
    plot_width = WIDTH - PAD_LEFT - PAD_RIGHT
    slot = plot_width / days
    bar = max(1.0, slot * 0.7)

    def x(index):
        return round(PAD_LEFT + index * slot + (slot - bar) / 2, 1)

    stock_top = max([1] + [day["stock"] for day in activity if day["stock"] is not None])
    stock_base = STOCK_TOP + STOCK_HEIGHT

    def stock_y(value):
        return round(stock_base - STOCK_HEIGHT * value / stock_top, 1)

    points = []
    for index, day in enumerate(activity):
        if day["stock"] is None:
            continue  # the pool did not exist yet
        points.append(
            {
                "x": round(PAD_LEFT + (index + 0.5) * slot, 1),
                "y": stock_y(day["stock"]),
                "title": gettext("%(day)s: stock %(count)s")
                % {"day": date_format(day["day"]), "count": number(day["stock"])},
            }
        )
    rows = []
    top = stock_base + 28
    for key, colour, label in SERIES:
        scale = max([0] + [day.get(key, 0) for day in activity])
        base = top + ROW_HEIGHT
        bars = []
        for index, day in enumerate(activity):
            value = day.get(key, 0)
            if value:
                # At least 2 px, so that a single code on a busy chart still shows.
                height = max(2.0, round(ROW_HEIGHT * value / scale, 1))
                bars.append(
                    {
                        "x": x(index),
                        "y": round(base - height, 1),
                        "width": round(bar, 1),
                        "height": height,
                        # "12 issued": the count, then what happened to that many codes.
                        "title": gettext("%(day)s: %(count)s %(activity)s")
                        % {
                            "day": date_format(day["day"]),
                            "count": number(value),
                            "activity": label,
                        },
                    }
                )
        rows.append(
            {
                "name": label,
                "colour": colour,
                "top": top,
                "base": base,
                "label_y": round(top + ROW_HEIGHT / 2 + 4, 1),
                "max": number(scale),
                "bars": bars,
            }
        )
        top = base + ROW_GAP
    height = top + 16
    return render_to_string(
        "admin/pools/pool/stock_chart_svg.html",
        {
            "width": WIDTH,
            "height": round(height),
            "left": PAD_LEFT,
            "right": WIDTH - PAD_RIGHT,
            "stock_top_y": STOCK_TOP,
            "stock_base": stock_base,
            "stock_max": number(stock_top),
            "polyline": " ".join(f"{p['x']},{p['y']}" for p in points),
            "points": points,
            "rows": rows,
            "dates_y": round(height - 4),
            "first": activity[0]["day"],
            "last": activity[-1]["day"],
            "activity": activity,
            "ranges": [(days_, days_ == chosen) for days_ in RANGES],
            "series": SERIES,
        },
    )
