"""What the pools app announces to the apps above it, which connect in their AppConfig.ready().

Pools imports nothing from them; each signal is sent once the transaction that caused it has
committed, so a receiver never sees, nor acts on, a change that is then rolled back.
"""

from django.db import transaction
from django.dispatch import Signal

# Something may have changed a pool's stock or its alert settings (codes issued, added or
# expired, settings saved, launched); sent with `pool`. The notifications app checks for low
# stock on it.
stock_changed = Signal()


def stock_changed_on_commit(pool) -> None:
    """Send stock_changed for `pool` after the current transaction commits (at once outside
    one)."""
    from .models import Pool

    # Robust: a receiver that fails (a broker down, say) is logged and changes nothing of what
    # committed.
    transaction.on_commit(lambda: stock_changed.send(sender=Pool, pool=pool), robust=True)


# An export job ended, whatever its outcome (with `export`); the notifications app e-mails the
# link to the one who asked.
export_finished = Signal()


def export_finished_on_commit(export) -> None:
    from .models import CodeExport

    transaction.on_commit(
        lambda: export_finished.send(sender=CodeExport, export=export), robust=True
    )
