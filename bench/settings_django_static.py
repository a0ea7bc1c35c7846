"""The baseline of bench/page_load_bench.py: the product's settings without WhiteNoise, so that
runserver serves static files itself, as Django does out of the box."""

from promo_project.settings import *  # noqa: F403
from promo_project.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("whitenoise")]
MIDDLEWARE = [layer for layer in MIDDLEWARE if not layer.startswith("whitenoise")]
