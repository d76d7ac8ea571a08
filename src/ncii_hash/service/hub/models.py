"""Request and response bodies of the hub (docs/hub.md, "Protocol"), as pydantic models. The
partner models use the StopNCII field names the stock ``StopNCIIAPI`` client sends and parses."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    detail: str


# ---- survivors ----------------------------------------------------------------------------------

class SubmissionBody(BaseModel):
    """A submission file exactly as ``ncii-hash hash -o`` writes it (checked by
    :func:`ncii_hash.submission.parse_submission`; shown here for the API docs)."""

    model_config = ConfigDict(extra="allow")
    format: str = "ncii-hash-submission"
    version: int = 1
    algorithm: str = "pdq"
    items: list[dict]
    counts: dict


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(min_length=1, max_length=64)


class CaseCreated(BaseModel):
    case_number: str
    pin: str
    items: int
    hashes: int


class CaseStatus(BaseModel):
    case_number: str
    status: str
    items: int
    hashes: int
    feedback: dict[str, int]


class CaseWithdrawn(BaseModel):
    case_number: str
    status: str
    hashes: int


# ---- partners -----------------------------------------------------------------------------------

class CSPFeedback(BaseModel):
    feedbackValue: str
    tags: list[str] = []
    source: str = ""


class HashRecordBody(BaseModel):
    lastModtimestamp: int
    signalType: str
    hashValue: str
    hashStatus: str
    caseNumbers: dict[str, str]
    CSPFeedbacks: list[CSPFeedback]


class FetchHashesBody(BaseModel):
    count: int
    nextPageToken: Optional[str]
    nextSetTimestamp: int
    hasMoreRecords: bool
    hashRecords: list[HashRecordBody]


class HashFeedback(BaseModel):
    hashValue: str = Field(max_length=1 << 20)
    feedbackValue: str
    tags: list[str] = Field(default=[], max_length=100)


class SubmitFeedbackBody(BaseModel):
    count: int = 0
    hashFeedbacks: list[HashFeedback] = Field(max_length=100_000)


class ReportedHashBody(BaseModel):
    lastModtimestamp: int = 0
    signalType: str
    hashValue: str = Field(max_length=1 << 20)
    CSPFeedbacks: list[CSPFeedback] = []


class SubmitHashesBody(BaseModel):
    count: int = 0
    hashRecords: list[ReportedHashBody] = Field(max_length=100_000)


class CountBody(BaseModel):
    count: int
