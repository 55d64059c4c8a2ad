-- Keep updated_at current on every UPDATE. The body is dollar-quoted and holds semicolons.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER tenants_touch_updated_at BEFORE UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER media_touch_updated_at BEFORE UPDATE ON media
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
