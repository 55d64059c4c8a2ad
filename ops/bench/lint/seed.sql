-- Sample schema for the lint corpus (ops/bench/lint/run seeds a private database with it).
-- Realistic enough that every corpus migration applies to it: users, media owned by users,
-- comments on media (no foreign key to media yet: the corpus adds one), varchar columns, a few
-- thousand rows each from generate_series, and the constraints some safe migrations build on.
CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       varchar(50) NOT NULL,
    name        varchar(50),
    age         integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Validated: lets `SET NOT NULL` on name skip its scan (PostgreSQL 12+).
    CONSTRAINT users_name_not_null CHECK (name IS NOT NULL)
);
CREATE INDEX users_email_idx ON users (email);

CREATE TABLE media (
    id          bigint PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id),
    filename    text NOT NULL,
    title       varchar(50),
    kind        text,
    size_bytes  integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_created_at_idx ON media (created_at);

CREATE TABLE comments (
    id          bigint PRIMARY KEY,
    media_id    bigint NOT NULL,
    user_id     bigint NOT NULL REFERENCES users (id),
    body        text NOT NULL,
    score_text  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Added NOT VALID by an earlier migration; a safe corpus migration validates it.
    CONSTRAINT comments_body_length CHECK (length(body) <= 10000) NOT VALID
);

-- An old table that nothing uses any more (as far as anyone knows).
CREATE TABLE legacy_events (
    id          bigint PRIMARY KEY,
    payload     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO users (email, name, age, created_at)
SELECT 'user' || g || '@example.com', 'User ' || g, 18 + g % 60,
       now() - make_interval(days => g % 700)
FROM generate_series(1, 2000) g;

INSERT INTO media (id, user_id, filename, title, kind, size_bytes, created_at)
SELECT g, 1 + g % 2000, 'file' || g || '.jpg', 'Title ' || g,
       (ARRAY['Image', 'Video', 'Audio'])[1 + g % 3], 1000 + g * 7,
       now() - make_interval(mins => g)
FROM generate_series(1, 5000) g;

INSERT INTO comments (id, media_id, user_id, body, score_text, created_at)
SELECT g, 1 + g % 5000, 1 + g % 2000, 'Comment ' || g, (g % 100)::text,
       now() - make_interval(secs => g)
FROM generate_series(1, 8000) g;

INSERT INTO legacy_events (id, payload)
SELECT g, jsonb_build_object('n', g) FROM generate_series(1, 1000) g;

ANALYZE;
