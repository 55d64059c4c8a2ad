-- Media objects uploaded by tenants; the bytes live in object storage.
CREATE TYPE media_kind AS ENUM ('image', 'video', 'audio', 'document');

CREATE TABLE media (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          media_kind NOT NULL,
    filename      text NOT NULL,
    content_type  text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    storage_key   text NOT NULL UNIQUE,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX media_tenant_id_idx ON media (tenant_id);
