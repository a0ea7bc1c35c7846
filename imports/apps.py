from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Code imports"

    def ready(self):
        from .signals import import_queued
        from .tasks import import_enqueue

        import_queued.connect(import_enqueue, dispatch_uid="imports.import_enqueue")
