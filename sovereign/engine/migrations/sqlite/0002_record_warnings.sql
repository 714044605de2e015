-- The warnings a phase's run printed, kept with its record.
ALTER TABLE records ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
