-- The router's store: crystals, attempts and the egress audit (SQLite, the embedded default).
CREATE TABLE crystals (
    id                TEXT PRIMARY KEY,
    created_at        REAL NOT NULL,
    exact_key         TEXT NOT NULL,
    domain            TEXT NOT NULL,
    single_turn       INTEGER NOT NULL,
    system_key        TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    messages          TEXT NOT NULL,
    answer            TEXT NOT NULL,
    provider          TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    raw_response      TEXT NOT NULL,
    embedding         BLOB,
    embedder          TEXT,
    request_id        TEXT,
    hits              INTEGER NOT NULL DEFAULT 0,
    last_hit_at       REAL
);
CREATE INDEX crystals_exact_key ON crystals (exact_key, created_at DESC);
CREATE INDEX crystals_created_at ON crystals (created_at);

CREATE TABLE attempts (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    uid               TEXT NOT NULL UNIQUE,
    request_id        TEXT NOT NULL,
    seq               INTEGER NOT NULL,
    at                REAL NOT NULL,
    tier              TEXT NOT NULL,
    model             TEXT,
    kind              TEXT,
    scorer            TEXT,
    raw_score         REAL,
    score             REAL,
    calibrated        INTEGER NOT NULL DEFAULT 0,
    threshold         REAL,
    latency_ms        REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    decision          TEXT NOT NULL,
    reason            TEXT,
    answer            TEXT,
    domain            TEXT,
    cls               TEXT,
    label             INTEGER,
    label_source      TEXT,
    features          TEXT
);
CREATE INDEX attempts_request ON attempts (request_id);
CREATE INDEX attempts_labelled ON attempts (tier, scorer) WHERE label IS NOT NULL;

CREATE TABLE egress_audit (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    uid               TEXT NOT NULL UNIQUE,
    at                REAL NOT NULL,
    request_id        TEXT,
    provider          TEXT NOT NULL,
    domain            TEXT,
    decision          TEXT NOT NULL,
    reason            TEXT NOT NULL,
    tokens            INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0
);
CREATE INDEX egress_audit_at ON egress_audit (at);
