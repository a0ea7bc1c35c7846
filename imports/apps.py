from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Code imports"

    def ready(self):
        from .signals import assignment_queued, import_queued
        from .tasks import assignment_enqueue, import_enqueue

        import_queued.connect(import_enqueue, dispatch_uid="imports.import_enqueue")
        assignment_queued.connect(assignment_enqueue, dispatch_uid="imports.assignment_enqueue")
