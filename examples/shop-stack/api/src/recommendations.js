'use strict';
const fs = require('fs');
const pool = require('./db');

// Products the customer has not viewed yet, ranked by the nightly product_rank score, boosted by
// the customer's affinity for each category (share of their views). Unknown customers get the
// plain ranking.
const PERSONALISED = `
  WITH me AS (SELECT id FROM customers WHERE external_id = $1),
  seen AS (SELECT v.product_id FROM product_views v JOIN me ON v.customer_id = me.id),
  affinity AS (
    SELECT p.category_id, count(*)::float8 / sum(count(*)) OVER () AS share
      FROM product_views v JOIN me ON v.customer_id = me.id JOIN products p ON p.id = v.product_id
     GROUP BY p.category_id)
  SELECT p.sku, p.name, c.slug AS category, p.price_cents,
         round((r.score * (1 + coalesce(a.share, 0)))::numeric, 4)::float8 AS score
    FROM product_rank r
    JOIN products p ON p.id = r.product_id
    JOIN categories c ON c.id = p.category_id
    LEFT JOIN affinity a ON a.category_id = p.category_id
   WHERE p.active AND p.id NOT IN (SELECT product_id FROM seen)
   ORDER BY score DESC, p.id
   LIMIT $2`;

async function personalised(user, limit) {
  const { rows } = await pool.query(PERSONALISED, [user, limit]);
  return rows.map((r) => ({ sku: r.sku, name: r.name, category: r.category, price: r.price_cents / 100, score: r.score }));
}

// DOWNGRADE_MODE: the precomputed site-wide top list shipped with the image
// (data/top.json, exported from product_rank by `npm run export-top`).
const TOP_FILE = process.env.TOP_RECOMMENDATIONS_FILE || `${__dirname}/../data/top.json`;
let top = null;
function getTopRecommendations(limit) {
  if (top === null) top = JSON.parse(fs.readFileSync(TOP_FILE, 'utf8')).items;
  return top.slice(0, limit);
}

module.exports = { personalised, getTopRecommendations };
