"""A demo run's summary (summary.json): built from what the run recorded, pure."""

from __future__ import annotations

from typing import Any

from .config import DemoConfig
from .events import DemoEvent
from .report import RotationRecord, SwitchRecord, check_rotations, users_in_order, verdict
from .state import SideState

__all__ = ["build_summary", "verdict_line"]


def build_summary(
    *,
    config: DemoConfig,
    events: list[DemoEvent],
    client_side: SideState,
    naive_side: SideState | None,
    metrics: Any,
    initial_user: str | None,
    rotation_failures: list[str],
    duration_s: float,
    end_day: float,
    interrupted: bool,
    check_error: str | None,
) -> dict[str, Any]:
    """The content of summary.json (pure: from what was recorded)."""
    rotations = [
        RotationRecord(
            number=int(e.fields["number"]),
            day=e.day,
            version=str(e.fields["version"]),
            user=str(e.fields.get("to_user")),
            manual=bool(e.fields.get("manual")),
        )
        for e in events
        if e.kind == "rotation_finished"
    ]
    switches = [
        SwitchRecord(day=e.day, version=str(e.fields.get("to_version")), user=str(e.fields.get("to_user")))
        for e in events
        if e.kind == "client_switched"
    ]
    recoveries = [e for e in events if e.kind == "client_auth_recovered"]
    writes = client_side.writes
    ok, failed, per_user = client_side.log.counts()
    summary: dict[str, Any] = {
        "passed": False,
        "ops_ok": ok,
        "ops_failed": failed,
        "ops_by_user": per_user,
        "failed_op_errors": dict(client_side.log.errors),
        "writes_acknowledged": len(set(client_side.log.acknowledged)),
        "writes_verified": writes is not None,
        "writes_lost": writes.lost if writes is not None else None,
        "writes_duplicated": writes.duplicated if writes is not None else None,
        "writes_unacknowledged_present": writes.unacknowledged_present if writes is not None else None,
        "writes_check_error": check_error,
        "rotations": len(rotations),
        "rotations_manual": sum(1 for r in rotations if r.manual),
        "rotation_days": [round(r.day, 3) for r in rotations],
        "switches": len(switches),
        "switch_days": [round(s.day, 3) for s in switches],
        "users_seen": users_in_order(initial_user, switches),
        "secretsmanager_api_calls": getattr(metrics, "api_calls", None),
        "refreshes": getattr(metrics, "refreshes", None),
        "auth_recoveries": getattr(metrics, "auth_recoveries", len(recoveries)),
        "auth_recovery_days": [round(e.day, 3) for e in recoveries],
        "new_connections": client_side.connections,
        "day_seconds": config.day_seconds,
        "rotation_interval_days": config.rotation_days,
        "refresh_interval_days": config.refresh_days,
        "workers": config.workers,
        "client_api": "asyncio" if config.async_client else "threads",
        "tls": config.tls,
        "duration_s": round(duration_s, 3),
        "days": round(end_day, 3),
        "manual_rotation": config.manual_rotation,
        "rotation_guard_days": config.rotation_guard_days if config.rotation_guard else None,
        "rotations_refused": sum(1 for e in events if e.kind == "rotation_refused"),
        "interrupted": interrupted,
        "rotation_failures": rotation_failures,
        "rotation_problems": check_rotations(
            rotations, switches, refresh_days=config.refresh_days, end_day=end_day if interrupted else float("inf")
        ),
    }
    if interrupted:
        summary["rotation_problems"] = []
    if naive_side is not None:
        n_ok, n_failed, n_per_user = naive_side.log.counts()
        first = naive_side.log.first_failure_t
        summary["naive"] = {
            "ops_ok": n_ok,
            "ops_failed": n_failed,
            "ops_by_user": n_per_user,
            "errors": dict(naive_side.log.errors),
            "first_failure_day": round(first / config.day_seconds, 3) if first is not None else None,
            "writes_acknowledged": len(set(naive_side.log.acknowledged)),
            "writes_lost": naive_side.writes.lost if naive_side.writes is not None else None,
            "new_connections": naive_side.connections,
        }
    if config.rotations and not interrupted and len(rotations) < config.rotations + summary["rotations_manual"]:
        summary["rotation_problems"].append(f"only {len(rotations)} of {config.rotations} rotations completed")
    summary["reasons"] = verdict(summary)
    summary["passed"] = not summary["reasons"]
    return summary


def verdict_line(summary: dict[str, Any]) -> str:
    """The closing line: PASSED, or FAILED and the reasons."""
    if summary["passed"]:
        return "PASSED: 0 failed operations, 0 lost writes, every rotation followed by the client"
    return "FAILED: " + "; ".join(summary["reasons"])
