DROP TRIGGER media_touch_updated_at ON media;
DROP TRIGGER tenants_touch_updated_at ON tenants;
DROP FUNCTION touch_updated_at();
