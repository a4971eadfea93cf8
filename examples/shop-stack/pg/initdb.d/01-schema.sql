-- The shop's catalogue, customers, what they looked at, and the nightly product ranking.
CREATE TABLE categories (
  id    smallint PRIMARY KEY,
  slug  text NOT NULL UNIQUE,
  name  text NOT NULL
);

CREATE TABLE products (
  id           serial PRIMARY KEY,
  sku          text NOT NULL UNIQUE,
  name         text NOT NULL,
  category_id  smallint NOT NULL REFERENCES categories (id),
  price_cents  integer NOT NULL CHECK (price_cents > 0),
  active       boolean NOT NULL DEFAULT true,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_category_idx ON products (category_id);

CREATE TABLE customers (
  id           serial PRIMARY KEY,
  external_id  text NOT NULL UNIQUE,
  email        text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE product_views (
  id           bigserial PRIMARY KEY,
  customer_id  integer NOT NULL REFERENCES customers (id),
  product_id   integer NOT NULL REFERENCES products (id),
  viewed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_views_customer_idx ON product_views (customer_id);
CREATE INDEX product_views_product_idx ON product_views (product_id);

-- Recomputed every night by refresh_product_rank(): popularity of each active product, 0..1.
CREATE TABLE product_rank (
  product_id   integer PRIMARY KEY REFERENCES products (id),
  score        double precision NOT NULL,
  computed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX product_rank_score_idx ON product_rank (score DESC);

CREATE FUNCTION refresh_product_rank() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  n integer;
BEGIN
  DELETE FROM product_rank;
  INSERT INTO product_rank (product_id, score, computed_at)
  SELECT p.id,
         coalesce(v.views, 0)::float8 / greatest(max(coalesce(v.views, 0)) OVER (), 1),
         now()
    FROM products p
    LEFT JOIN (SELECT product_id, count(*) AS views FROM product_views GROUP BY product_id) v
           ON v.product_id = p.id
   WHERE p.active;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
