-- What the owner's system knows, in the `sovereign` schema (the store connects
-- with search_path=sovereign, so the runner's schema_version is here too).
--
-- behavioral_events: append-only, a hash chain (sovereign/knowledge/events.py
-- computes `hash`; this file guards the table). methodology_rules: the owner's
-- standards, versioned, never edited in place.
--
-- The maintenance switch: `SET sovereign.maintenance = 'on'` in a session lifts
-- the triggers' refusal of UPDATE, DELETE and TRUNCATE for that session (roles
-- that hold those privileges only: the writer role never does). docs/knowledge.md.

CREATE SCHEMA IF NOT EXISTS sovereign;

CREATE TABLE sovereign.behavioral_events (
    seq       BIGINT PRIMARY KEY CHECK (seq >= 1),
    id        TEXT NOT NULL UNIQUE,
    at        TIMESTAMPTZ NOT NULL,
    source    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL DEFAULT '',
    payload   JSONB NOT NULL DEFAULT '{}'::jsonb,
    prev_hash TEXT NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
    hash      TEXT NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$')
);
CREATE INDEX behavioral_events_kind_at ON sovereign.behavioral_events (kind, at);

CREATE FUNCTION sovereign.maintenance_on() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('sovereign.maintenance', true), '') = 'on'
$$;

-- UPDATE, DELETE and TRUNCATE are refused, even for the owner, unless the switch is on.
CREATE FUNCTION sovereign.events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT sovereign.maintenance_on() THEN
        RAISE EXCEPTION 'sovereign.behavioral_events is append-only: % refused', TG_OP
            USING HINT = 'a maintenance session runs SET sovereign.maintenance = ''on'' first (docs/knowledge.md)';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER behavioral_events_no_update BEFORE UPDATE OR DELETE ON sovereign.behavioral_events
    FOR EACH ROW EXECUTE FUNCTION sovereign.events_append_only();
CREATE TRIGGER behavioral_events_no_truncate BEFORE TRUNCATE ON sovereign.behavioral_events
    FOR EACH STATEMENT EXECUTE FUNCTION sovereign.events_append_only();

-- A new row links to the head: seq 1 to the genesis hash, seq N to row N-1's hash
-- (always checked, the switch or not: a restore inserts in order).
CREATE FUNCTION sovereign.events_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq = 1 THEN
        IF NEW.prev_hash <> repeat('0', 64) THEN
            RAISE EXCEPTION 'behavioral_events seq 1 must link to the genesis hash' USING ERRCODE = 'check_violation';
        END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM sovereign.behavioral_events
                      WHERE seq = NEW.seq - 1 AND hash = NEW.prev_hash) THEN
        RAISE EXCEPTION 'behavioral_events seq %: prev_hash is not the hash of seq %', NEW.seq, NEW.seq - 1
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER behavioral_events_link BEFORE INSERT ON sovereign.behavioral_events
    FOR EACH ROW EXECUTE FUNCTION sovereign.events_link();

CREATE TABLE sovereign.methodology_rules (
    name       TEXT NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]*$'),
    version    INTEGER NOT NULL CHECK (version >= 1),
    statement  TEXT NOT NULL CHECK (statement <> ''),
    kind       TEXT NOT NULL CHECK (kind IN ('threshold', 'schedule', 'forbid', 'require')),
    params     JSONB NOT NULL,
    severity   TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    valid_from TIMESTAMPTZ NOT NULL,
    valid_to   TIMESTAMPTZ CHECK (valid_to IS NULL OR valid_to >= valid_from),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);
-- At most one open version of a rule.
CREATE UNIQUE INDEX methodology_rules_one_open ON sovereign.methodology_rules (name) WHERE valid_to IS NULL;

-- A version is never edited: the only UPDATE is closing an open version
-- (valid_to from NULL to a time); no DELETE. The switch lifts both.
CREATE FUNCTION sovereign.rules_versioned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF sovereign.maintenance_on() THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.valid_to IS NULL AND NEW.valid_to IS NOT NULL
       AND (NEW.name, NEW.version, NEW.statement, NEW.kind, NEW.params, NEW.severity, NEW.valid_from,
            NEW.created_at)
           IS NOT DISTINCT FROM
           (OLD.name, OLD.version, OLD.statement, OLD.kind, OLD.params, OLD.severity, OLD.valid_from,
            OLD.created_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'sovereign.methodology_rules: a version is never edited (% refused); add a new version',
        TG_OP USING HINT = 'sovereign knowledge rules add NAME supersedes the open version';
END $$;

CREATE TRIGGER methodology_rules_versioned BEFORE UPDATE OR DELETE ON sovereign.methodology_rules
    FOR EACH ROW EXECUTE FUNCTION sovereign.rules_versioned();

-- The writers' group role (phase 6 grants it to the services' logins):
-- INSERT and SELECT on the events, SELECT on the rules; never UPDATE or DELETE.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sovereign_knowledge_writer') THEN
        CREATE ROLE sovereign_knowledge_writer NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- made by a concurrent migration of another database of the cluster
END $$;

GRANT USAGE ON SCHEMA sovereign TO sovereign_knowledge_writer;
REVOKE ALL ON sovereign.behavioral_events, sovereign.methodology_rules FROM sovereign_knowledge_writer;
GRANT SELECT, INSERT ON sovereign.behavioral_events TO sovereign_knowledge_writer;
GRANT SELECT ON sovereign.methodology_rules TO sovereign_knowledge_writer;
GRANT SELECT ON sovereign.schema_version TO sovereign_knowledge_writer;
