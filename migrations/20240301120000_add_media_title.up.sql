-- A title column, filled later from metadata->>'title' by the backfill in jobs/.
ALTER TABLE media ADD COLUMN title text;
ALTER TABLE media ADD COLUMN width integer;
ALTER TABLE media ADD COLUMN height integer;
