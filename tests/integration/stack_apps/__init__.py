"""Small real applications, one per stack, served by the test that starts them (tests/integration/test_stacks.py).

Each serves ``GET /op``: one insert and one read through the stack's own
API (pymongo handles kept since start-up, Beanie, MongoEngine, Django's
ORM), answering ``{"user": ..., "pid": ...}`` or, on an error, HTTP 500 with
``{"error": "<type>: <code>"}`` (never a message that could carry a login).
"""
