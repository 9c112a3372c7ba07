"""FastAPI under uvicorn: an ``AsyncRotatingMongoClient`` in the lifespan, its database kept in ``app.state``."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from secretswitch.client import AsyncRotatingMongoClient

from .common import DATABASE, MONGO_OPTIONS, error_body, ok_body, policy, secret_id

_counter = itertools.count()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncRotatingMongoClient(
        secret_id(), database=DATABASE, policy=policy(), mongo_options=MONGO_OPTIONS
    ) as rc:
        app.state.rc = rc
        app.state.items = rc.database()["stack_items"]  # kept for the life of the process
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/op")
async def op(request: Request) -> Response:
    items = request.app.state.items
    try:
        inserted = (await items.insert_one({"n": next(_counter)})).inserted_id
        if await items.find_one({"_id": inserted}) is None:
            raise LookupError("the document just inserted is missing")
    except Exception as exc:
        return Response(error_body(exc), status_code=500, media_type="application/json")
    return Response(ok_body(request.app.state.rc.active_user), media_type="application/json")
