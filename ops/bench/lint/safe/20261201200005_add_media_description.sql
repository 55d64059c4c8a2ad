-- safe: ADD COLUMN that is nullable with no default changes only the catalog: no rewrite, no scan.
ALTER TABLE media ADD COLUMN description text;
