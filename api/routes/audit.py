"""`/audit`: verify the tamper-evident history over HTTP, for admins (docs/audit.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.dependencies import Reader, Store
from api.problems import ProblemError, problem_responses
from api.roles import Role

router = APIRouter(prefix="/audit", tags=["audit"])


def require_admin(principal: Reader) -> None:
    """403 unless the caller's role is admin (401 without a valid token)."""
    if principal.role is not Role.ADMIN:
        raise ProblemError("forbidden", f"the {principal.role.value} role may not audit: "
                                        "ask an admin")


class AuditFinding(BaseModel):
    kind: str = Field(description="altered, removed, inserted, reordered, checkpoint, "
                                  "snapshot, row, read_model")
    candidacy_id: str | None = None
    version: int | None = None
    notification_id: int | None = None
    detail: str


class AuditVerification(BaseModel):
    """What `closer audit verify` answers, the findings limited to the caller's workspace
    (and the log's own, such as a checkpoint that no longer matches)."""

    intact: bool
    events_checked: int
    checkpoints_checked: int
    snapshots_checked: int
    read_model_rows_checked: int = Field(
        0, description="the read models' stored rows compared with those their events make")
    tree_size: int
    findings: list[AuditFinding]
    findings_elsewhere: int = Field(description="findings in other workspaces' candidacies")


@router.get("/verify", operation_id="verifyAudit", dependencies=[Depends(require_admin)],
            responses=problem_responses(401, 403, 422))
def verify_audit(
    request: Request, candidacies: Store, principal: Reader,
    since: Annotated[int | None, Query(ge=1, description="trust checkpoint N and check the "
                                                         "log after it")] = None,
    read_models: Annotated[bool, Query(description="also compare the read models' tables "
                                                   "with what the events make (minutes on "
                                                   "a large store)")] = True,
) -> AuditVerification:
    """Check every stored event's chain link, every signed checkpoint, every snapshot,
    every candidacy's current row and the read models' tables; the first finding first."""
    from api.audit_service import verify_store

    report = verify_store(candidacies, request.app.state.settings, since=since,
                          read_models=read_models)
    mine: list[AuditFinding] = []
    elsewhere = 0
    rows: dict[str, str | None] = {}
    for finding in report.findings:
        if finding.originator_id is not None:
            if finding.originator_id not in rows:
                row = candidacies.row(finding.originator_id)
                rows[finding.originator_id] = row.workspace if row else None
            if rows[finding.originator_id] != principal.workspace:
                elsewhere += 1
                continue
        mine.append(AuditFinding(kind=finding.kind, candidacy_id=finding.originator_id,
                                 version=finding.version,
                                 notification_id=finding.notification_id,
                                 detail=finding.detail))
    return AuditVerification(intact=report.intact, events_checked=report.events,
                             checkpoints_checked=report.checkpoints_checked,
                             snapshots_checked=report.snapshots_checked,
                             read_model_rows_checked=report.read_model_rows_checked,
                             tree_size=report.size,
                             findings=mine, findings_elsewhere=elsewhere)


class ErasureRequest(BaseModel):
    """Which candidacy to erase, and why (recorded: no personal data, e.g. a reference)."""

    candidacy_id: str
    reason: str = Field(min_length=1, max_length=2000)


class Erasure(BaseModel):
    """What an erasure did: the candidacy's version and stage after it, and how the
    store's files were rewritten (docs/audit.md, "Erasure")."""

    candidacy_id: str
    version: int
    stage: str
    storage: dict[str, Any]


@router.post("/erasures", operation_id="eraseCandidacy", dependencies=[Depends(require_admin)],
             responses=problem_responses(400, 401, 403, 404, 409, 422))
def erase_candidacy(body: ErasureRequest, candidacies: Store, principal: Reader) -> Erasure:
    """Erase a candidate's personal data in the caller's workspace (as `closer erase`):
    the key destroyed, the plaintext copies scrubbed, the files rewritten; 409
    ``candidacy-erased`` when it was erased already."""
    from api.audit_service import erase
    from engine.values import Actor

    outcome, storage = erase(candidacies, Actor(user=principal.user,
                                                workspace=principal.workspace),
                             body.candidacy_id, body.reason)
    return Erasure(candidacy_id=outcome.candidacy_id, version=outcome.version,
                   stage=outcome.stage, storage=storage)
