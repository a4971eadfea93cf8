-- Schema, functions and deterministic seed data for recommendation_db.
--
-- Run once by postgres-entrypoint on an empty data volume (as the app role,
-- so the app owns its tables), and at image build time to derive the static
-- top-N list for DOWNGRADE_MODE. Every "random" choice is an md5 hash of a
-- fixed string, so two runs produce identical rows.

-- 32-bit unsigned hash of a text, stable across PostgreSQL versions.
CREATE FUNCTION recsys_hash(t text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT ('x' || substr(md5(t), 1, 8))::bit(32)::bigint
$$;

CREATE TABLE items (
  item_id    integer PRIMARY KEY,
  title      text NOT NULL,
  category   text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  user_id    text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, item): the strongest interaction the user had with it.
CREATE TABLE interactions (
  user_id    text    NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  item_id    integer NOT NULL REFERENCES items(item_id) ON DELETE CASCADE,
  kind       text    NOT NULL CHECK (kind IN ('view', 'click', 'like', 'purchase')),
  weight     real    NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, item_id)
);
CREATE INDEX interactions_item_idx ON interactions (item_id);

-- Global popularity score per item. Recommendations JOIN this table: an item
-- without a score is never recommended, so an empty item_scores means empty
-- recommendations (the runbook's "new content not recommended / empty
-- results" case). refresh_item_scores() rebuilds it.
CREATE TABLE item_scores (
  item_id    integer PRIMARY KEY REFERENCES items(item_id) ON DELETE CASCADE,
  score      double precision NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Recompute item_scores from interactions: every item gets a base score of 1
-- plus log-scaled interaction weight plus a bonus per distinct user.
-- Returns the number of scored items.
CREATE FUNCTION refresh_item_scores() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM item_scores;
  INSERT INTO item_scores (item_id, score, updated_at)
  SELECT i.item_id,
         round((1.0 + ln(1.0 + coalesce(sum(x.weight), 0))
                    + count(x.user_id) / 50.0)::numeric, 4)::float8,
         now()
  FROM items i
  LEFT JOIN interactions x ON x.item_id = i.item_id
  GROUP BY i.item_id;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- Personal recommendations: items the user has not interacted with yet,
-- ranked by item_scores.score boosted by the user's category affinity (the
-- share of the user's interaction weight that falls in the item's category).
CREATE FUNCTION recommendations_for(p_user text, p_limit integer DEFAULT 10)
RETURNS TABLE (item_id integer, title text, category text, score double precision)
LANGUAGE sql STABLE AS $$
  WITH seen AS (
    SELECT x.item_id, x.weight FROM interactions x WHERE x.user_id = p_user
  ), affinity AS (
    SELECT i.category, sum(s.weight) AS w
    FROM seen s JOIN items i ON i.item_id = s.item_id
    GROUP BY i.category
  ), total AS (
    SELECT coalesce(sum(a.w), 0) AS t FROM affinity a
  )
  SELECT i.item_id, i.title, i.category,
         round((sc.score * (1 + coalesce(a.w / nullif(t.t, 0), 0)))::numeric, 4)::float8
  FROM items i
  JOIN item_scores sc ON sc.item_id = i.item_id
  CROSS JOIN total t
  LEFT JOIN affinity a ON a.category = i.category
  WHERE NOT EXISTS (SELECT 1 FROM seen s WHERE s.item_id = i.item_id)
  ORDER BY 4 DESC, i.item_id
  LIMIT greatest(p_limit, 0)
$$;

-- ---------------------------------------------------------------------------
-- Seed: 60 items in 6 categories, users user-1 .. user-200, ~8-9 interactions
-- per user (biased towards one favourite category), then item_scores.
-- Fixed timestamps keep the data byte-for-byte reproducible.

INSERT INTO items (item_id, title, category, created_at)
SELECT i,
       (ARRAY['Classic','Smart','Compact','Deluxe','Vintage','Eco','Pro','Mini','Ultra','Cosy'])
         [recsys_hash('adj:' || i) % 10 + 1]
       || ' ' ||
       (ARRAY['Novel','Headphones','Board Game','Lamp','Album','Running Shoes'])[(i - 1) % 6 + 1]
       || ' ' || i,
       (ARRAY['books','electronics','games','home','music','sports'])[(i - 1) % 6 + 1],
       timestamptz '2024-01-01 00:00:00+00' + make_interval(hours => i)
FROM generate_series(1, 60) AS i;

INSERT INTO users (user_id, created_at)
SELECT 'user-' || u, timestamptz '2024-01-15 00:00:00+00' + make_interval(mins => u)
FROM generate_series(1, 200) AS u;

INSERT INTO interactions (user_id, item_id, kind, weight, created_at)
SELECT 'user-' || u, i.item_id,
       (ARRAY['view','click','like','purchase'])[recsys_hash('kind:' || u || ':' || i.item_id) % 4 + 1],
       (ARRAY[1, 2, 3, 5])[recsys_hash('kind:' || u || ':' || i.item_id) % 4 + 1],
       timestamptz '2024-02-01 00:00:00+00'
         + make_interval(mins => (recsys_hash('ts:' || u || ':' || i.item_id) % 20000)::int)
FROM generate_series(1, 200) AS u
CROSS JOIN items i
WHERE recsys_hash('x:' || u || ':' || i.item_id) % 100 <
      CASE WHEN i.category = (ARRAY['books','electronics','games','home','music','sports'])
                              [recsys_hash('fav:' || u) % 6 + 1]
           THEN 35 ELSE 10 END;

SELECT refresh_item_scores();
ANALYZE items, users, interactions, item_scores;
