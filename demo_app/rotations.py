"""Rotation on the compressed clock: the schedule, the out-of-schedule rotation, each step as it happens.

The scheduler rotates the secret every ``rotation_days`` demo days, exactly
as Secrets Manager's schedule would, through
:func:`rotation_tools.rotate.rotate_secret`. On the embedded stack moto's
``RotateSecret`` invokes the rotation function once per step; the demo
registers a :class:`StepRecorder` there, which reports each step and hands it
to the real function.

``--manual-rotation`` adds one rotation out of schedule. In the
alternating-users scheme a rotation changes the password of the user that is
*not* AWSCURRENT. Whether that is the user the application has cached depends
on when it happens:

* after a scheduled rotation and before the client's next refresh, the client
  still holds the previous AWSCURRENT user, which is exactly the user the next
  rotation changes: one extra rotation changes the cached user's password;
* once the client has caught up it holds AWSCURRENT; one extra rotation then
  changes only the other user, and the client rightly never notices. To change
  the cached user's password out of schedule takes two rotations in a row.

The scheduler picks the middle of the client's cache period after the first
scheduled rotation, looks which case it is in, and rotates once or twice so
that the password of the user the client has cached is really changed.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from secretswitch.client.errors import SecretSwitchError
from secretswitch.rotation_lambda.secretsmanager import SecretsManagerGateway

from .clock import DemoClock
from .events import EventLog

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["RotationScheduler", "SecretInspector", "VersionRow", "StepRecorder"]

_log = logging.getLogger(__name__)


class _Outcome(Protocol):
    token: str
    completed: bool
    failed_step: str | None
    message: str


Rotate = Callable[[], _Outcome]
"""Starts one rotation and returns when it has finished or failed."""


@dataclass(frozen=True)
class VersionRow:
    """One row of the demo's version table: a version's id, stages and user (never the password)."""

    version_id: str
    stages: tuple[str, ...]
    user: str


class SecretInspector:
    """Reads the secret's versions and the user of each (user names only; passwords are dropped at once)."""

    def __init__(self, client: SecretsManagerClient, secret_id: str) -> None:
        self._gateway = SecretsManagerGateway(client)
        self._secret_id = secret_id
        self._users: dict[str, str] = {}
        self._lock = threading.Lock()
        self.latest: tuple[VersionRow, ...] = ()

    def user_of(self, version_id: str) -> str:
        if version_id not in self._users:
            try:
                value = self._gateway.version(self._secret_id, version_id=version_id).secret_string
                self._users[version_id] = str(json.loads(value or "{}").get("username", "?"))
            except (SecretSwitchError, ValueError):  # a pending version may have no value yet
                return "?"
        return self._users[version_id]

    def versions(self) -> tuple[VersionRow, ...]:
        """The versions that carry a stage, newest first; also kept in :attr:`latest`."""
        with self._lock:
            found = tuple(
                VersionRow(v.version_id, v.stages, self.user_of(v.version_id))
                for v in self._gateway.listed_versions(self._secret_id)
            )
            self.latest = found
            return found

    def current(self) -> VersionRow:
        for version in self.versions():
            if "AWSCURRENT" in version.stages:
                return version
        raise LookupError(f"secret {self._secret_id!r} has no AWSCURRENT version")


class StepRecorder:
    """The rotation function as moto invokes it, reporting each step before and after it runs.

    Args:
        events: where the steps are reported.
        inner: the real rotation function (takes the event dict).
    """

    def __init__(self, events: EventLog, inner: Callable[[dict[str, Any]], object] | None = None) -> None:
        self.events = events
        self.inner = inner
        self.rotation_number = 0

    def __call__(self, event: dict[str, Any]) -> object:
        if self.inner is None:
            raise RuntimeError("the rotation function is not set up yet")
        step = str(event.get("Step"))
        token = str(event.get("ClientRequestToken"))
        try:
            result = self.inner(event)
        except Exception as exc:
            self.events.emit(
                "rotation_step", number=self.rotation_number, step=step, token=token, ok=False, message=str(exc)
            )
            raise
        self.events.emit("rotation_step", number=self.rotation_number, step=step, token=token, ok=True)
        return result


@dataclass
class ClientView:
    """What the scheduler needs to know about the client (kept up to date by the runner)."""

    user: str | None = None
    version: str | None = None
    last_refresh_day: float = 0.0


class RotationScheduler:
    """Runs the rotations on the demo clock in a thread of its own.

    Args:
        clock: the demo clock.
        events: where rotations are reported.
        rotate: starts one rotation (blocking) and returns its outcome.
        inspector: reads the secret's versions.
        recorder: the step recorder (its rotation number is set before each rotation), if any.
        client: what the client holds now.
        rotations / rotation_days / refresh_days: the schedule.
        manual_rotation: add the out-of-schedule rotation.
        max_days: give up waiting for the client after this demo day.
    """

    def __init__(
        self,
        *,
        clock: DemoClock,
        events: EventLog,
        rotate: Rotate,
        inspector: SecretInspector,
        recorder: StepRecorder | None,
        client: ClientView,
        rotations: int,
        rotation_days: float,
        refresh_days: float,
        manual_rotation: bool,
        max_days: float,
    ) -> None:
        self.clock = clock
        self.events = events
        self.rotate = rotate
        self.inspector = inspector
        self.recorder = recorder
        self.client = client
        self.rotations = rotations
        self.rotation_days = rotation_days
        self.refresh_days = refresh_days
        self.manual_rotation = manual_rotation
        self.max_days = max_days
        self.ends_at: float | None = None  # the real last day, once the client switched after the last rotation
        self.stop_event = threading.Event()
        self.done = threading.Event()
        self.completed = 0
        self.failures: list[str] = []
        self._thread: threading.Thread | None = None
        self._number = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="demo-rotation-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _main(self) -> None:
        try:
            self._schedule()
        except Exception as exc:  # noqa: BLE001 - reported as a failure, the run still ends cleanly
            _log.exception("rotation scheduler failed")
            self.failures.append(f"the rotation scheduler failed: {type(exc).__name__}: {exc}")
            self.events.emit("rotation_failed", number=self._number, failed_step="scheduler", message=str(exc))
        finally:
            self.done.set()

    def _schedule(self) -> None:
        for scheduled in range(1, self.rotations + 1):
            if not self.clock.wait_until_day(scheduled * self.rotation_days, self.stop_event):
                return
            if not self._rotate_once(manual=False):
                return
            # Mid cache period after the first rotation, before the second one is due.
            if self.manual_rotation and scheduled == 1 and not self._manual_before(2 * self.rotation_days):
                return
        self._wait_for_client()

    def _manual_before(self, next_due: float) -> bool:
        """Wait for the middle of the client's cache period, then rotate out of schedule."""
        while not self.stop_event.is_set():
            target = max(self.client.last_refresh_day + self.refresh_days / 2, self.clock.day())
            # Never collide with the next scheduled rotation.
            target = min(target, next_due - self.rotation_days / 4)
            if self.clock.day() >= target:
                break
            self.stop_event.wait(min(0.05, (target - self.clock.day()) * self.clock.day_seconds))
        if self.stop_event.is_set():
            return False
        current = self.inspector.current()
        cached = self.client.user
        if cached is not None and cached != current.user:
            self.events.emit(
                "manual_rotation",
                rotations=1,
                cached_user=cached,
                message=(
                    f"the client still caches {cached} (it has not refreshed since AWSCURRENT moved to "
                    f"{current.user}); one rotation now changes {cached}'s password under it"
                ),
            )
            return self._rotate_once(manual=True)
        self.events.emit(
            "manual_rotation",
            rotations=2,
            cached_user=cached,
            message=(
                f"the client already uses AWSCURRENT ({current.user}); one rotation would only change the other "
                f"user, which nobody uses, so two rotations in a row change {current.user}'s password under it"
            ),
        )
        return self._rotate_once(manual=True) and self._rotate_once(manual=True)

    def _rotate_once(self, *, manual: bool) -> bool:
        self._number += 1
        number = self._number
        if self.recorder is not None:
            self.recorder.rotation_number = number
        before = self.inspector.current()
        self.events.emit(
            "rotation_started", number=number, manual=manual, from_user=before.user, from_version=before.version_id
        )
        outcome = self.rotate()
        after = self.inspector.current()
        if not outcome.completed and "refused by the rotation guard" in outcome.message:
            # --rotation-guard: too soon after the last switch; the function changed nothing.
            self.events.emit("rotation_refused", number=number, manual=manual, message=outcome.message)
            return True
        if not outcome.completed:
            message = f"rotation {number} failed at {outcome.failed_step}: {outcome.message}"
            self.failures.append(message)
            self.events.emit("rotation_failed", number=number, failed_step=outcome.failed_step, message=outcome.message)
            return False
        self.completed += 1
        self.events.emit(
            "rotation_finished",
            number=number,
            manual=manual,
            from_user=before.user,
            to_user=after.user,
            version=after.version_id,
            token=outcome.token,
            stages={v.version_id: list(v.stages) for v in self.inspector.latest},
        )
        return True

    def _wait_for_client(self) -> None:
        """After the last rotation: wait until the client has switched to it, then one more demo day."""
        final = self.inspector.current().version_id
        # The client re-reads the secret at most refresh_days after its last read, which was before the
        # rotation finished: by then it must have switched. A slow rotation moves the deadline.
        deadline = max(self.max_days, self.clock.day() + self.refresh_days + 1.0)
        self.max_days = deadline
        while not self.stop_event.is_set() and self.clock.day() < deadline:
            if self.client.version == final:
                self.ends_at = min(self.clock.day() + 1.0, deadline)
                self.clock.wait_until_day(self.ends_at, self.stop_event)
                return
            self.stop_event.wait(0.02)
