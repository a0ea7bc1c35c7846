"""Keys that existed before scopes keep every right until staff edit them, and the idempotency
keys their issues were recorded under move into each API key's own namespace, so that a retry
of an issue made before this migration still finds its code."""

import hashlib

from django.db import migrations

EVERY_OPERATION = ["issue", "issue-batch", "stock", "mark-issued", "check", "redeem", "release"]
KEY_MAX_LENGTH = 200


def namespaced(prefix: str, key: str) -> str:
    # As pools.code_services.api_key_namespace says it on the day of this migration.
    derived = f"api:{prefix}:{key}"
    if len(derived) > KEY_MAX_LENGTH:
        derived = "sha256:" + hashlib.sha256(derived.encode()).hexdigest()
    return derived


def forwards(apps, schema_editor):
    APIKey = apps.get_model("rest_framework_api_key", "APIKey")
    ApiKeyScope = apps.get_model("pools", "ApiKeyScope")
    CodeIssue = apps.get_model("pools", "CodeIssue")
    prefixes = list(APIKey.objects.values_list("prefix", flat=True))
    for api_key in APIKey.objects.all():
        ApiKeyScope.objects.get_or_create(
            api_key=api_key, defaults={"operations": EVERY_OPERATION}
        )
    issues = (
        CodeIssue.objects.filter(issued_by__in=prefixes)
        .exclude(idempotency_key="", released_key="")
        .only("id", "issued_by", "idempotency_key", "released_key")
    )
    changed = []
    for issue in issues.iterator(chunk_size=5000):
        if issue.idempotency_key:
            issue.idempotency_key = namespaced(issue.issued_by, issue.idempotency_key)
        if issue.released_key:
            issue.released_key = namespaced(issue.issued_by, issue.released_key)
        changed.append(issue)
        if len(changed) == 5000:
            CodeIssue.objects.bulk_update(changed, ["idempotency_key", "released_key"])
            changed = []
    CodeIssue.objects.bulk_update(changed, ["idempotency_key", "released_key"])


class Migration(migrations.Migration):
    dependencies = [("pools", "0015_api_key_scopes")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
