from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class PoolsConfig(AppConfig):
    name = "pools"
    verbose_name = _("Promo code pools")

    def ready(self):
        from . import api, api_keys, checks  # noqa: F401  (register signal receivers, checks)
        from .export_services import code_export_finished_announce
        from .groups import staff_groups_sync
        from .jobs import job_kind_register
        from .models import AdditionUndo, CodeExport, Withdrawal
        from .tasks import addition_undo_send, code_export_send, withdrawal_send

        job_kind_register(
            CodeExport,
            send=code_export_send,
            heartbeat_timeout=lambda: settings.EXPORT_HEARTBEAT_TIMEOUT,
            finished=code_export_finished_announce,
        )
        # Withdrawals and undos announce each slice's change of stock as it commits.
        job_kind_register(Withdrawal, send=withdrawal_send)
        job_kind_register(AdditionUndo, send=addition_undo_send)

        # Without a sender it runs after every app's migrations, so the permissions of apps
        # migrated after this one are in the groups too.
        post_migrate.connect(staff_groups_sync, dispatch_uid="pools.staff_groups_sync")
