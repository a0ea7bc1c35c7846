from django.conf import settings
from django.core.checks import Tags, Warning, register

SQLITE_IN_PRODUCTION = Warning(
    "SQLite is the zero-setup default, not a production database.",
    hint="Set DATABASE_URL to a PostgreSQL database (postgres://user:password@host/name).",
    id="pools.W001",
)
FILE_BROKER_IN_PRODUCTION = Warning(
    "The Celery broker is the file-based zero-setup default.",
    hint="Set CELERY_BROKER_URL to Redis (redis://host:6379/0).",
    id="pools.W002",
)


@register(Tags.database, deploy=True)
def check_production_services(app_configs, **kwargs):
    """Warn at `check --deploy` when the zero-setup defaults would run in production."""
    warnings = []
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        warnings.append(SQLITE_IN_PRODUCTION)
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        warnings.append(FILE_BROKER_IN_PRODUCTION)
    return warnings
