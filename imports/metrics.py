"""What imports add to /metrics (pools/metrics.py): how fast imports read rows."""

from datetime import timedelta

from django.db.models import F, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from .models import Import


def import_throughput():
    hour = Import.objects.filter(finished_at__gte=timezone.now() - timedelta(hours=1)).exclude(
        started_at=None
    )
    done = hour.aggregate(rows=Sum("rows_read"), seconds=Sum(F("finished_at") - F("started_at")))
    seconds = done["seconds"].total_seconds() if done["seconds"] else 0
    rate = GaugeMetricFamily(
        "promo_import_rows_per_second",
        "Rows read per second of work by the imports finished in the last hour.",
    )
    rate.add_metric([], (done["rows"] or 0) / seconds if seconds else 0)
    yield rate
