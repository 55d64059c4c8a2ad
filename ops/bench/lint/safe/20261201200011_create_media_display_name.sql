-- safe: CREATE FUNCTION adds a new object and locks no table.
CREATE FUNCTION media_display_name(m media) RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT coalesce(m.title, m.filename) $$;
