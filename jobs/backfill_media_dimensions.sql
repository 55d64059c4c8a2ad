-- godwit:batched
-- name: backfill media width and height
-- table: media
-- key: id
-- batch-size: 2000
-- target-batch-ms: 150
-- pause-ms: 10
-- Images and videos carry their pixel size in metadata; copy it to typed columns.
UPDATE media
SET width = (metadata->>'width')::integer, height = (metadata->>'height')::integer
WHERE id BETWEEN $1 AND $2
  AND kind IN ('image', 'video')
  AND width IS NULL
  AND metadata ? 'width';
