-- name: get_in_subtree
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE id = $1 AND path <@ $2::ltree;

-- name: insert_child
WITH parent AS (SELECT id, path FROM channels WHERE id = $1),
     new AS (SELECT nextval(pg_get_serial_sequence('channels', 'id')) AS id)
INSERT INTO channels (id, parent_id, name, path, regions, customer_groups)
SELECT new.id, parent.id, $2, parent.path || new.id::text, $3, $4
FROM parent, new
RETURNING id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
          default_markup_percent;

-- name: children_page
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE parent_id = $1 AND id > $2
ORDER BY id
LIMIT $3;

-- name: chain_between
-- The channels from the ancestor at $2 down to the channel at $1, top first.
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE path @> $1::ltree AND path <@ $2::ltree
ORDER BY nlevel(path);

-- name: root
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE parent_id IS NULL;

-- name: rename_root
UPDATE channels SET name = $1 WHERE parent_id IS NULL;

-- name: child_by_name
SELECT id, parent_id, name, path::text AS path, regions, customer_groups, created_at,
       default_markup_percent
FROM channels
WHERE parent_id = $1 AND name = $2
ORDER BY id
LIMIT 1;
