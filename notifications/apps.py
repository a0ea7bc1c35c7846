from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self):
        from pools.signals import stock_changed

        from .services import low_stock_check

        def check(sender, pool, **kwargs):
            low_stock_check(pool=pool)

        stock_changed.connect(check, weak=False, dispatch_uid="notifications.low_stock_check")
