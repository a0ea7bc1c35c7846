from django.dispatch import Signal

# Sent after something may have changed a pool's stock or its alert settings (codes issued or
# added, settings saved), with `pool`. The notifications app checks for low stock on it.
stock_changed = Signal()
