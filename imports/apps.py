from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = _("Code imports")

    def ready(self):
        from pools.jobs import job_kind_register

        from .engine import import_finished_announce
        from .models import Assignment, Import
        from .tasks import assignment_send, import_send

        job_kind_register(Import, send=import_send, finished=import_finished_announce)
        job_kind_register(Assignment, send=assignment_send)

        from pools.signals import stock_changed

        from .refill import refill_check

        def refill(sender, pool, **kwargs):
            refill_check(pool=pool)

        stock_changed.connect(refill, weak=False, dispatch_uid="imports.refill_check")

        from pools.export_services import export_source_register

        from .selectors import REJECTED_ROWS, REJECTED_ROWS_SOURCE

        export_source_register(REJECTED_ROWS, REJECTED_ROWS_SOURCE)

        from pools.metrics import state_collector_register

        from .metrics import import_throughput

        state_collector_register(import_throughput)
