from django.db import migrations


def backfill(apps, schema_editor):
    """Give each import that added codes its pool-side addition record (the chart reads it)."""
    Import = apps.get_model("imports", "Import")
    CodeAddition = apps.get_model("pools", "CodeAddition")
    for job in Import.objects.filter(addition__isnull=True).iterator():
        job.addition = CodeAddition.objects.create(
            pool_id=job.pool_id,
            codes_added=job.codes_added,
            created_at=job.created_at,
            added_at=job.finished_at or job.heartbeat_at,
        )
        job.save(update_fields=["addition"])


class Migration(migrations.Migration):
    dependencies = [("imports", "0003_import_addition")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
