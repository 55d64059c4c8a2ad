-- Outgoing webhooks a tenant subscribes to. A simple (irreversible) migration.
CREATE TABLE webhooks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url         text NOT NULL CHECK (url ~ '^https://'),
    events      text[] NOT NULL DEFAULT ARRAY['media.created'],
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhooks_tenant_id_idx ON webhooks (tenant_id) WHERE active;
