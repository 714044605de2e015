-- The chunks of the RAG store a local tier's request was given as context
-- (retrieval.py), as a JSON list of chunk ids; rows from before have none.
ALTER TABLE attempts ADD COLUMN chunks TEXT;
