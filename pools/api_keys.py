"""What an API key may do: the operations it may call and the pools it may touch (ApiKeyScope),
read once per key every few seconds, and the service that makes a key with its scope.

Staff grant scopes in the admin (the API key's page); the shell and scripts call api_key_create.
A key without a scope may do nothing.

The refusals here are the API's only, so they stay English (as every API answer does).
"""

from dataclasses import dataclass

from django.core.cache import caches
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework_api_key.models import APIKey

from .models import ApiKeyScope, ApiOperation, Campaign, Pool

OPERATION_NOT_ALLOWED = "operation_not_allowed"
OPERATION_NOT_ALLOWED_MESSAGE = "This API key may not call this operation."
POOL_NOT_ALLOWED = "pool_not_allowed"
POOL_NOT_ALLOWED_MESSAGE = "This API key may not touch this pool."

# As long as a checked key is trusted (api_base.API_KEY_CACHE_SECONDS): a scope narrowed in the
# admin holds at once in the process that saved it, and in others within this time.
RIGHTS_CACHE_SECONDS = 10
_rights_cache = caches["local"]


@dataclass(frozen=True)
class KeyRights:
    operations: frozenset[str]
    # The pool IDs the key may touch; None: every pool.
    pool_slugs: frozenset[str] | None

    def may(self, operation: str) -> bool:
        return operation in self.operations

    def reaches(self, slug: str) -> bool:
        """Return True if the key may touch the pool with this pool ID (whether it exists or
        not: a key limited to some pools learns nothing of the others)."""
        return self.pool_slugs is None or slug in self.pool_slugs


NO_RIGHTS = KeyRights(operations=frozenset(), pool_slugs=frozenset())


def key_rights(prefix: str) -> KeyRights:
    """Return what the API key with this prefix may do (cached for RIGHTS_CACHE_SECONDS)."""
    cache_key = _cache_key(prefix)
    rights = _rights_cache.get(cache_key)
    if rights is None:
        rights = _rights_read(prefix)
        _rights_cache.set(cache_key, rights, RIGHTS_CACHE_SECONDS)
    return rights


def _rights_read(prefix: str) -> KeyRights:
    scope = ApiKeyScope.objects.filter(api_key__prefix=prefix).first()
    if scope is None:
        return NO_RIGHTS
    operations = frozenset(scope.operations or ()) & set(ApiOperation.values)
    if scope.every_pool:
        return KeyRights(operations=operations, pool_slugs=None)
    campaign_ids = list(scope.campaigns.values_list("pk", flat=True))
    pool_slugs = set(scope.pools.values_list("slug", flat=True))
    pool_slugs |= set(
        Pool.objects.filter(campaign_id__in=campaign_ids).values_list("slug", flat=True)
    )
    return KeyRights(operations=operations, pool_slugs=frozenset(pool_slugs))


def _cache_key(prefix: str) -> str:
    return f"api:rights:{prefix}"


def key_rights_forget(prefix: str) -> None:
    _rights_cache.delete(_cache_key(prefix))


@receiver([post_save, post_delete], sender=ApiKeyScope)
def _forget_scope(sender, instance, **kwargs):
    key_rights_forget(instance.api_key.prefix)


@receiver(m2m_changed, sender=ApiKeyScope.campaigns.through)
@receiver(m2m_changed, sender=ApiKeyScope.pools.through)
def _forget_scope_reach(sender, instance, **kwargs):
    if isinstance(instance, ApiKeyScope):
        key_rights_forget(instance.api_key.prefix)


@transaction.atomic
def api_key_create(
    *,
    name: str,
    operations: list[str],
    campaigns: list[Campaign] = (),
    pools: list[Pool] = (),
    expiry_date=None,
) -> tuple[APIKey, str]:
    """Make an API key that may call `operations` (ApiOperation values) on the pools named,
    and those of the campaigns named (none named: every pool, present and future); return it
    with its secret, which is shown only now."""
    unknown = set(operations) - set(ApiOperation.values)
    if unknown:
        raise ValueError(f"Unknown operations: {', '.join(sorted(unknown))}")
    api_key, secret = APIKey.objects.create_key(name=name, expiry_date=expiry_date)
    scope = ApiKeyScope.objects.create(
        api_key=api_key, operations=list(operations), every_pool=not (campaigns or pools)
    )
    scope.campaigns.set(campaigns)
    scope.pools.set(pools)
    return api_key, secret
