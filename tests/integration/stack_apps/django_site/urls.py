"""``GET /op``: one insert and one read through Django's ORM."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tests.integration.stack_apps.common import error_body, ok_body

from .models import StackItem


def op(request: HttpRequest) -> HttpResponse:
    try:
        item = StackItem.objects.create(n=1)
        StackItem.objects.get(pk=item.pk)
    except Exception as exc:
        return HttpResponse(error_body(exc), status=500, content_type="application/json")
    return HttpResponse(ok_body(connection.rotating_client.active_user), content_type="application/json")


urlpatterns = [path("op", op)]
