"""The router's records: what the store keeps and the outbox carries.

`Crystal` (a cloud answer, with the messages, token counts, model and raw
response), `Attempt` (one tier tried for one request), `Label` (an attempt
judged against a reference), `AuditEntry` (one decision of the egress gate),
`CrystalHit` (a crystal served again). Crystals, attempts and audit entries
name the caller whose request they belong to. Each carries a client-made unique id,
so that writing one twice is harmless.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Crystal(BaseModel):
    # The embedding travels as base64 in JSON (the outbox).
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    id: str
    created_at: float
    exact_key: str
    domain: str
    single_turn: bool
    system_key: str
    prompt: str
    messages: list[dict[str, Any]]
    answer: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    raw_response: dict[str, Any]
    embedding: bytes | None = None
    embedder: str | None = None
    request_id: str | None = None
    hits: int = 0
    last_hit_at: float | None = None
    caller: str | None = None  # whose request it answered (a policy may serve it to its own only)


class CrystalSummary(BaseModel):
    id: str
    created_at: float
    domain: str
    provider: str
    model: str
    prompt: str
    answer: str
    hits: int
    tokens: int


class Attempt(BaseModel):
    request_id: str
    seq: int
    at: float
    tier: str
    model: str | None = None
    kind: str | None = None
    scorer: str | None = None
    raw_score: float | None = None
    score: float | None = None
    calibrated: bool = False
    threshold: float | None = None
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    decision: str
    reason: str = ""
    answer: str | None = None
    domain: str | None = None
    cls: str | None = None
    label: bool | None = None
    label_source: str | None = None
    features: dict[str, Any] = {}
    caller: str | None = None
    chunks: list[str] = []  # the RAG store's chunks given to the tier as context (retrieval.py)

    @property
    def uid(self) -> str:
        return f"{self.request_id}:{self.seq}"


class AuditEntry(BaseModel):
    uid: str
    at: float
    request_id: str | None
    provider: str
    domain: str | None
    decision: str
    reason: str
    tokens: int = 0
    cost_usd: float = 0.0
    caller: str | None = None


class Label(BaseModel):
    request_id: str
    seq: int
    label: bool
    source: str


class CrystalHit(BaseModel):
    id: str
    at: float
