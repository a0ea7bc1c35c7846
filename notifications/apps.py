from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self):
        from imports.signals import import_finished, refill_stopped
        from pools.jobs import staff_language_register
        from pools.selectors import launch_warning_checks
        from pools.signals import export_finished, stock_changed

        from . import tasks
        from .languages import language_of
        from .services import launch_warnings, low_stock_check
        from .signals import alert_raised

        def check(sender, pool, **kwargs):
            # Synchronous and cheap: a few counter rows; an e-mail is queued only on a crossing.
            low_stock_check(pool=pool)

        stock_changed.connect(check, weak=False, dispatch_uid="notifications.low_stock_check")
        import_finished.connect(
            tasks.import_notice_enqueue, dispatch_uid="notifications.import_notice"
        )
        export_finished.connect(
            tasks.export_notice_enqueue, dispatch_uid="notifications.export_notice"
        )
        alert_raised.connect(tasks.alert_enqueue, dispatch_uid="notifications.alert_send")
        refill_stopped.connect(
            tasks.refill_stopped_enqueue, dispatch_uid="notifications.refill_stopped"
        )
        # Jobs' reports and messages, written by workers, in the language of whoever started
        # the job (pools imports nothing above it, so it is told how to find it).
        staff_language_register(language_of)
        from pools.metrics import state_collector_register

        from .metrics import alerts

        state_collector_register(alerts)
        if launch_warnings not in launch_warning_checks:
            launch_warning_checks.append(launch_warnings)
