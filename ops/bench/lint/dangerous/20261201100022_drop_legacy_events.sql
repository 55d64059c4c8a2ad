-- dangerous: DROP TABLE of an existing table destroys its data and breaks anything still using it; it cannot be undone by a down migration.
DROP TABLE legacy_events;
