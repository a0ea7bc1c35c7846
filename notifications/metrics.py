"""What notifications add to /metrics (pools/metrics.py): low-stock alerts and their e-mails."""

from prometheus_client.core import GaugeMetricFamily

from .models import AlertDelivery, LowStockAlert


def alerts():
    sent = GaugeMetricFamily(
        "promo_low_stock_alerts", "Low-stock alerts, sent or waiting.", labels=["state"]
    )
    sent.add_metric(["sent"], LowStockAlert.objects.exclude(sent_at=None).count())
    sent.add_metric(["waiting"], LowStockAlert.objects.filter(sent_at=None).count())
    yield sent
    emails = GaugeMetricFamily(
        "promo_alert_emails_delivered", "Alert e-mails the mail server accepted."
    )
    emails.add_metric([], AlertDelivery.objects.count())
    yield emails
