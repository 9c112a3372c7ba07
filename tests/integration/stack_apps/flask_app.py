"""Flask under gunicorn ``--preload``: the rotating client and a collection handle are made at import time."""

from __future__ import annotations

import itertools

from flask import Flask, Response

from secretswitch.client import RotatingMongoClient

from .common import DATABASE, MONGO_OPTIONS, error_body, ok_body, policy, secret_id

rc = RotatingMongoClient(secret_id(), database=DATABASE, policy=policy(), mongo_options=MONGO_OPTIONS)
items = rc.database()["stack_items"]  # kept for the life of every worker
_counter = itertools.count()

app = Flask(__name__)


@app.get("/op")
def op() -> Response:
    try:
        inserted = items.insert_one({"n": next(_counter)}).inserted_id
        if items.find_one({"_id": inserted}) is None:
            raise LookupError("the document just inserted is missing")
    except Exception as exc:
        return Response(error_body(exc), status=500, mimetype="application/json")
    return Response(ok_body(rc.active_user), mimetype="application/json")
