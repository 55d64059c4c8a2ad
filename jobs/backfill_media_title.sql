-- godwit:batched
-- name: backfill media.title
-- table: media
-- key: id
-- batch-size: 1000
-- target-batch-ms: 200
-- lock-timeout: 2s
-- statement-timeout: 10s
-- Fill the title column added by migration 20240301120000 from the uploaded metadata,
-- falling back to the file name.
UPDATE media SET title = coalesce(metadata->>'title', filename)
WHERE id BETWEEN $1 AND $2 AND title IS NULL;
