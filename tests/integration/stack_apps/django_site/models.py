"""The one model: a document per request."""

from __future__ import annotations

from django.db import models


class StackItem(models.Model):  # type: ignore[misc]  # Django is untyped here
    n = models.IntegerField()

    class Meta:
        db_table = "stack_django_items"
