"""Beanie under FastAPI/uvicorn, wired with ``secretswitch.client.adapters.beanie.init_beanie``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from beanie import Document
from fastapi import FastAPI, Request, Response

from secretswitch.client import AsyncRotatingMongoClient
from secretswitch.client.adapters.beanie import init_beanie

from .common import DATABASE, MONGO_OPTIONS, error_body, ok_body, policy, secret_id


class StackItem(Document):
    n: int

    class Settings:
        name = "stack_beanie_items"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncRotatingMongoClient(
        secret_id(), database=DATABASE, policy=policy(), mongo_options=MONGO_OPTIONS
    ) as rc:
        await init_beanie(rc, document_models=[StackItem])
        app.state.rc = rc
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/op")
async def op(request: Request) -> Response:
    try:
        item = await StackItem(n=1).insert()
        if await StackItem.get(item.id) is None:
            raise LookupError("the document just inserted is missing")
    except Exception as exc:
        return Response(error_body(exc), status_code=500, media_type="application/json")
    return Response(ok_body(request.app.state.rc.active_user), media_type="application/json")
