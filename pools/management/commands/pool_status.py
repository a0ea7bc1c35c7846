"""`manage.py pool_status [ID]`: pools, their state and their codes, for a terminal or a script."""

from django.core.management.base import BaseCommand

from pools.management.terminal import answer, pool_named
from pools.models import Pool
from pools.selectors import pools_with_counts

COUNTS = ("available", "issued", "redeemed", "expired", "withdrawn", "total")


def pool_facts(pool) -> dict:
    return {
        "pool": pool.slug,
        "campaign": pool.campaign.name,
        "status": pool.status,
        "threshold": pool.notify_below if pool.notify_below_enabled else None,
        **{name: getattr(pool, f"codes_{name}") for name in COUNTS},
    }


class Command(BaseCommand):
    help = "Show each pool's state and code counts (or one pool's, given its ID)."

    def add_arguments(self, parser):
        parser.add_argument("pool", nargs="?", help="a pool ID (or its number); all if left out")
        parser.add_argument("--json", action="store_true", help="answer in JSON")

    def handle(self, *args, **options):
        pools = Pool.objects.select_related("campaign").order_by("campaign__name", "slug")
        if options["pool"]:
            pools = pools.filter(pk=pool_named(options["pool"]).pk)
        facts = [pool_facts(pool) for pool in pools_with_counts(pools)]
        widths = max((len(f["pool"]) for f in facts), default=4)
        lines = [
            f"{'pool':<{widths}}  {'status':<8}  "
            + "  ".join(f"{name:>10}" for name in COUNTS)
            + "  threshold"
        ]
        lines += [
            f"{f['pool']:<{widths}}  {f['status']:<8}  "
            + "  ".join(f"{f[name]:>10}" for name in COUNTS)
            + f"  {'' if f['threshold'] is None else f['threshold']:>9}"
            for f in facts
        ]
        answer(self, options, {"pools": facts}, lines)
