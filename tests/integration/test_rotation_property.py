"""Property: whatever sequence of rotations, steps, repeats and crashes happens, AWSCURRENT logs in."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secretswitch.client.credentials import parse_secret
from secretswitch.client.errors import SecretSwitchError
from secretswitch.embedded_stack.stack import EmbeddedStack
from secretswitch.rotation_lambda.lambda_function import make_handler
from secretswitch.rotation_lambda.rules import STEPS
from secretswitch.rotation_lambda.secretsmanager import SecretsManagerGateway
from secretswitch.rotation_tools.rotate import rotate_secret, rotation_in_progress
from tests.faults import interrupted_rotation

REGION = "sa-east-1"

actions = st.one_of(
    st.tuples(st.just("rotate"), st.sampled_from([None, "start", *STEPS])),
    st.tuples(st.just("step"), st.sampled_from(STEPS)),
    st.tuples(st.just("resume"), st.none()),
)


@pytest.fixture(scope="module")
def pstack() -> Iterator[EmbeddedStack]:
    with EmbeddedStack(region=REGION) as running:
        yield running


def _current_logs_in(stack: EmbeddedStack) -> bool:
    sm = stack.secretsmanager_client()
    value = sm.get_secret_value(SecretId=stack.info.app_secret_id, VersionStage="AWSCURRENT")["SecretString"]
    credentials = parse_secret(value, secret_id="property")
    client = stack.mongo_client(credentials.username, credentials.password, serverSelectionTimeoutMS=3000)
    try:
        client[json.loads(value)["dbname"]].list_collection_names()
    except Exception:
        return False
    finally:
        client.close()
    return True


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=st.lists(actions, min_size=1, max_size=5))
def test_awscurrent_logs_in_after_every_action(pstack: EmbeddedStack, sequence: list[tuple[str, str | None]]) -> None:
    sm = pstack.secretsmanager_client()
    secret_id = pstack.info.app_secret_id
    handler = make_handler(secretsmanager_client_factory=pstack.secretsmanager_client, sleep=lambda seconds: None)
    gateway = SecretsManagerGateway(sm)
    for action, argument in sequence:
        in_progress = rotation_in_progress(gateway.describe(secret_id))
        if action == "rotate" and in_progress is None:
            if argument is None:
                rotate_secret(sm, secret_id, rotation_lambda_arn=pstack.rotation_function_arn)
            else:
                interrupted_rotation(
                    sm, secret_id, crash_after_step=argument, function_arn=pstack.rotation_function_arn
                )
        elif action == "step" and in_progress is not None:
            event = {"Step": argument, "SecretId": secret_id, "ClientRequestToken": in_progress}
            # Out-of-order steps are refused with a clear error; that is allowed.
            with contextlib.suppress(SecretSwitchError):
                handler(event, None)
        elif action == "resume":
            rotate_secret(sm, secret_id, resume=True)
        assert _current_logs_in(pstack), (action, argument)
    # Whatever happened, a resume completes the rotation and leaves nothing pending.
    outcome = rotate_secret(sm, secret_id, resume=True)
    assert outcome.completed, outcome.message
    assert rotation_in_progress(gateway.describe(secret_id)) is None
    assert _current_logs_in(pstack)
