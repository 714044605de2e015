-- The phase ledger: one row per host, phase and run; and the results of `sovereign bench`.
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    cluster TEXT NOT NULL,
    inventory TEXT NOT NULL,
    host TEXT NOT NULL,
    phase INTEGER NOT NULL,
    status TEXT NOT NULL,
    check_mode INTEGER NOT NULL DEFAULT 0,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER,
    git_commit TEXT,
    fingerprint TEXT,
    changed INTEGER,
    failed_tasks INTEGER,
    skipped_steps TEXT NOT NULL DEFAULT '[]',
    reboot_required TEXT NOT NULL DEFAULT '[]',
    checks TEXT NOT NULL DEFAULT '[]',
    artifacts TEXT,
    message TEXT
);
CREATE INDEX records_host_phase ON records (cluster, host, phase, id);
CREATE TABLE benchmarks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    cluster TEXT NOT NULL,
    host TEXT NOT NULL,
    model TEXT NOT NULL,
    at REAL NOT NULL,
    prompt_tps REAL,
    gen_tps REAL,
    gen_stddev REAL,
    bandwidth_gbps REAL NOT NULL,
    bandwidth_source TEXT NOT NULL,
    roofline_tps REAL NOT NULL,
    min_tps REAL,
    backend TEXT,
    build TEXT
);
