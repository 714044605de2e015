-- The router's store: crystals, attempts and the egress audit (Postgres, selected by a DSN).
CREATE TABLE crystals (
    id                TEXT PRIMARY KEY,
    created_at        DOUBLE PRECISION NOT NULL,
    exact_key         TEXT NOT NULL,
    domain            TEXT NOT NULL,
    single_turn       BOOLEAN NOT NULL,
    system_key        TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    messages          JSONB NOT NULL,
    answer            TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    raw_response      JSONB NOT NULL,
    embedding         BYTEA,
    embedder          TEXT,
    request_id        TEXT,
    hits              INTEGER NOT NULL DEFAULT 0,
    last_hit_at       DOUBLE PRECISION
);
CREATE INDEX crystals_exact_key ON crystals (exact_key, created_at DESC);
CREATE INDEX crystals_created_at ON crystals (created_at);

CREATE TABLE attempts (
    id                BIGSERIAL PRIMARY KEY,
    uid               TEXT NOT NULL UNIQUE,
    request_id        TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    at                DOUBLE PRECISION NOT NULL,
    tier              TEXT NOT NULL,
    model             TEXT,
    kind              TEXT,
    scorer            TEXT,
    raw_score         DOUBLE PRECISION,
    score             DOUBLE PRECISION,
    calibrated        BOOLEAN NOT NULL DEFAULT FALSE,
    threshold         DOUBLE PRECISION,
    latency_ms        DOUBLE PRECISION,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    decision          TEXT NOT NULL,
    reason            TEXT,
    answer            TEXT,
    domain            TEXT,
    cls               TEXT,
    label             BOOLEAN,
    label_source      TEXT,
    features          JSONB
);
CREATE INDEX attempts_request ON attempts (request_id);
CREATE INDEX attempts_labelled ON attempts (tier, scorer) WHERE label IS NOT NULL;

CREATE TABLE egress_audit (
    id                BIGSERIAL PRIMARY KEY,
    uid               TEXT NOT NULL UNIQUE,
    at                DOUBLE PRECISION NOT NULL,
    request_id        TEXT,
    provider          TEXT NOT NULL,
    domain            TEXT,
    decision          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    tokens            INTEGER NOT NULL DEFAULT 0,
    cost_usd          DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX egress_audit_at ON egress_audit (at);
