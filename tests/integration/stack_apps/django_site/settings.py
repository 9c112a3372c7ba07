"""Settings of the test's Django project: the database is the rotating client's (see DATABASES)."""

from __future__ import annotations

from tests.integration.stack_apps.common import DATABASE, MONGO_OPTIONS, policy, secret_id

SECRET_KEY = "stack-test-only"  # Django's signing key of a throwaway test project
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "tests.integration.stack_apps.django_site.urls"
INSTALLED_APPS = ["tests.integration.stack_apps.django_site"]
DEFAULT_AUTO_FIELD = "django_mongodb_backend.fields.ObjectIdAutoField"
USE_TZ = True
DATABASES = {
    "default": {
        "ENGINE": "secretswitch.client.adapters.django",
        "NAME": DATABASE,
        "OPTIONS": {"secret_id": secret_id(), "policy": policy(), **MONGO_OPTIONS},
    },
}
