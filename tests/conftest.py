import pytest

from promo_project.celery import app as celery_app
from tests.factories import make_manager, make_viewer


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _celery_in_process(request, settings, tmp_path):
    """Run tasks in the test's process, except in tests that start a real worker."""
    settings.MEDIA_ROOT = tmp_path / "media"
    if request.node.get_closest_marker("integration"):
        yield
        return
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def manager(db):
    return make_manager()


@pytest.fixture
def viewer(db):
    return make_viewer()


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client
