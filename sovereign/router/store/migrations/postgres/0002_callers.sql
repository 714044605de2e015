-- Every record names its caller (callers.py): who asked for the attempt, whose
-- request the egress gate decided, whose request a crystal answered. Rows from
-- before keys existed have none.
ALTER TABLE crystals ADD COLUMN caller TEXT;
ALTER TABLE attempts ADD COLUMN caller TEXT;
ALTER TABLE egress_audit ADD COLUMN caller TEXT;
CREATE INDEX egress_audit_caller_at ON egress_audit (caller, at);
