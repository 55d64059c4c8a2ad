-- safe: ADD COLUMN DEFAULT now(): now() is stable, evaluated once and stored in the catalog (PostgreSQL 11+): no rewrite (relfilenode unchanged on PostgreSQL 15).
ALTER TABLE comments ADD COLUMN edited_at timestamptz DEFAULT now();
