-- safe: CREATE TABLE and its indexes in the same file: nobody else can use the new table yet, so a plain CREATE INDEX blocks no one.
CREATE TABLE tags (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    media_id   bigint NOT NULL REFERENCES media (id),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tags_media_id_idx ON tags (media_id);
CREATE UNIQUE INDEX tags_media_id_name_idx ON tags (media_id, name);
