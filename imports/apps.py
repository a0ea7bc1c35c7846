from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Code imports"

    def ready(self):
        from .signals import assignment_queued, import_queued
        from .tasks import assignment_enqueue, import_enqueue

        import_queued.connect(import_enqueue, dispatch_uid="imports.import_enqueue")
        assignment_queued.connect(assignment_enqueue, dispatch_uid="imports.assignment_enqueue")

        from pools.signals import stock_changed

        from .refill import refill_check

        def refill(sender, pool, **kwargs):
            refill_check(pool=pool)

        stock_changed.connect(refill, weak=False, dispatch_uid="imports.refill_check")

        from pools.export_services import export_source_register

        from .selectors import REJECTED_ROWS, REJECTED_ROWS_SOURCE

        export_source_register(REJECTED_ROWS, REJECTED_ROWS_SOURCE)
