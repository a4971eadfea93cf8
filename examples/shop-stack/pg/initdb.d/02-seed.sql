-- Demo data, deterministic (md5-based choices, fixed dates): 8 categories, 1200 products,
-- 500 customers c-1001 .. c-1500, about 10000 product views (each customer favours one
-- category), and the product ranking computed from them.
CREATE FUNCTION pg_temp.h(t text) RETURNS float8 LANGUAGE sql IMMUTABLE AS
  $$ SELECT ('x' || substr(md5(t), 1, 8))::bit(32)::bigint / 4294967296.0 $$;

INSERT INTO categories (id, slug, name) VALUES
  (1, 'kitchen', 'Kitchen'), (2, 'garden', 'Garden'), (3, 'outdoor', 'Outdoor'),
  (4, 'office', 'Office'), (5, 'toys', 'Toys'), (6, 'audio', 'Audio'),
  (7, 'lighting', 'Lighting'), (8, 'bath', 'Bath');

INSERT INTO products (id, sku, name, category_id, price_cents, active, created_at)
SELECT i,
       'SKU-' || lpad(i::text, 5, '0'),
       (ARRAY['Compact', 'Classic', 'Deluxe', 'Eco', 'Pro', 'Mini', 'Smart', 'Rustic'])[1 + floor(pg_temp.h('adj' || i) * 8)::int]
         || ' ' || (ARRAY['kettle', 'planter', 'lantern', 'organizer', 'puzzle', 'speaker', 'lamp', 'towel set'])[1 + (i - 1) % 8]
         || ' ' || i,
       1 + (i - 1) % 8,
       499 + floor(pg_temp.h('price' || i) * 20000)::int,
       pg_temp.h('active' || i) > 0.03,
       timestamptz '2025-06-01 00:00+00' + floor(pg_temp.h('new' || i) * 300) * interval '1 day'
  FROM generate_series(1, 1200) i;
SELECT setval('products_id_seq', 1200);

INSERT INTO customers (id, external_id, email, created_at)
SELECT i, 'c-' || (1000 + i), 'c-' || (1000 + i) || '@shop.example',
       timestamptz '2025-01-01 00:00+00' + i * interval '13 hours'
  FROM generate_series(1, 500) i;
SELECT setval('customers_id_seq', 500);

-- 10..30 views per customer; 70 % of them in the customer's favourite category
INSERT INTO product_views (customer_id, product_id, viewed_at)
SELECT c.id,
       CASE WHEN pg_temp.h(c.id || ':' || n || ':fav') < 0.7
            THEN 1 + (c.id % 8) + 8 * floor(pg_temp.h(c.id || ':' || n || ':p') * 150)::int
            ELSE 1 + floor(pg_temp.h(c.id || ':' || n || ':any') * 1200)::int END,
       timestamptz '2026-10-01 00:00+00' + pg_temp.h(c.id || ':' || n || ':t') * interval '60 days'
  FROM customers c
  CROSS JOIN generate_series(1, 30) n
 WHERE n <= 10 + floor(pg_temp.h('views' || c.id) * 21)::int
 ORDER BY 3;

SELECT refresh_product_rank();
ANALYZE categories, products, customers, product_views, product_rank;
