'use strict';
// Writes the site-wide top 100 (by product_rank) to data/top.json, the list DOWNGRADE_MODE
// serves. Run against the database after the nightly ranking:
//   PGHOST=... PGPORT=5433 PGDATABASE=shop PGUSER=shop_app PGPASSWORD=... npm run export-top
const fs = require('fs');
const path = require('path');
const { Client } = require('pg');

async function main() {
  const client = new Client();
  await client.connect();
  const { rows } = await client.query(`
    SELECT p.sku, p.name, c.slug AS category, p.price_cents, round(r.score::numeric, 4)::float8 AS score,
           max(r.computed_at) OVER () AS computed_at
      FROM product_rank r JOIN products p ON p.id = r.product_id JOIN categories c ON c.id = p.category_id
     WHERE p.active
     ORDER BY r.score DESC, p.id
     LIMIT 100`);
  await client.end();
  if (!rows.length) throw new Error('product_rank is empty: nothing to export');
  const out = {
    computed_at: rows[0].computed_at,
    source: 'product_rank',
    items: rows.map((r) => ({ sku: r.sku, name: r.name, category: r.category, price: r.price_cents / 100, score: r.score })),
  };
  const file = path.join(__dirname, '..', 'data', 'top.json');
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(`wrote ${out.items.length} items to ${file}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
