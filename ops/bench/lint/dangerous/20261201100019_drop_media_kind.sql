-- dangerous: DROP COLUMN breaks every running application instance that still reads or writes kind (and the data is gone).
ALTER TABLE media DROP COLUMN kind;
