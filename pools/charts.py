"""The stock chart of a pool's page: an SVG drawn on the server, readable without JavaScript."""

from django.template.loader import render_to_string

WIDTH, HEIGHT, PAD = 640, 180, 28
SERIES = (
    ("added", "#3a8a4f"),
    ("issued", "#2f6db5"),
    ("redeemed", "#d98324"),
    ("withdrawn", "#8a1111"),
)


def stock_chart_svg(activity: list[dict]) -> str:
    """Return an SVG of daily added / issued / redeemed / withdrawn bars and the stock line."""
    days = len(activity)
    top = max([1] + [day.get(key, 0) for day in activity for key, _ in SERIES])
    stock_top = max([1] + [day["stock"] for day in activity])
    slot = (WIDTH - 2 * PAD) / days
    bar = max(1.0, slot / (len(SERIES) + 1))
    plot_height = HEIGHT - 2 * PAD

    def y(value, scale):
        return round(HEIGHT - PAD - plot_height * value / scale, 1)

    bars = []
    for index, day in enumerate(activity):
        for offset, (key, colour) in enumerate(SERIES):
            if day.get(key):
                x = round(PAD + index * slot + offset * bar + bar / 2, 1)
                top_y = y(day[key], top)
                bars.append(
                    {
                        "x": x,
                        "y": top_y,
                        "height": round(HEIGHT - PAD - top_y, 1),
                        "width": round(bar, 1),
                        "colour": colour,
                        "title": f"{day['day']:%d %b}: {day[key]} {key}",
                    }
                )
    points = " ".join(
        f"{round(PAD + (index + 0.5) * slot, 1)},{y(day['stock'], stock_top)}"
        for index, day in enumerate(activity)
    )
    return render_to_string(
        "admin/pools/pool/stock_chart.svg",
        {
            "width": WIDTH,
            "height": HEIGHT,
            "pad": PAD,
            "bars": bars,
            "points": points,
            "top": top,
            "stock_top": stock_top,
            "first": activity[0]["day"],
            "last": activity[-1]["day"],
            "series": SERIES,
            "activity": activity,
            "axis_y": HEIGHT - PAD,
            "right": WIDTH - PAD,
        },
    )
