"""MongoEngine in a Flask app under gunicorn (threads), wired with ``secretswitch.client.adapters.mongoengine``."""

from __future__ import annotations

from flask import Flask, Response
from mongoengine import Document, IntField

from secretswitch.client import RotatingMongoClient
from secretswitch.client.adapters.mongoengine import connect

from .common import DATABASE, MONGO_OPTIONS, error_body, ok_body, policy, secret_id

rc = RotatingMongoClient(secret_id(), database=DATABASE, policy=policy(), mongo_options=MONGO_OPTIONS)
connect(rc)


class StackItem(Document):
    n = IntField()
    meta = {"collection": "stack_mongoengine_items"}  # noqa: RUF012  # MongoEngine's own convention


app = Flask(__name__)


@app.get("/op")
def op() -> Response:
    try:
        item = StackItem(n=1).save()
        if StackItem.objects(id=item.id).first() is None:
            raise LookupError("the document just inserted is missing")
    except Exception as exc:
        return Response(error_body(exc), status=500, mimetype="application/json")
    return Response(ok_body(rc.active_user), mimetype="application/json")
