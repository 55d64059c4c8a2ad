DROP TABLE media;
DROP TYPE media_kind;
