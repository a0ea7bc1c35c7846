from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PoolsConfig(AppConfig):
    name = "pools"
    verbose_name = "Promo code pools"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
        from .groups import staff_groups_sync
        from .signals import export_queued, withdrawal_queued
        from .tasks import code_export_enqueue, withdrawal_enqueue

        withdrawal_queued.connect(withdrawal_enqueue, dispatch_uid="pools.withdrawal_enqueue")

        # Without a sender it runs after every app's migrations, so the permissions of apps
        # migrated after this one are in the groups too.
        post_migrate.connect(staff_groups_sync, dispatch_uid="pools.staff_groups_sync")
        export_queued.connect(code_export_enqueue, dispatch_uid="pools.code_export_enqueue")
