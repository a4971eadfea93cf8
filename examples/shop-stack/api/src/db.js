'use strict';
// PostgreSQL pool. Connection settings come from the standard PG* variables (PGHOST, PGPORT,
// PGDATABASE, PGUSER, PGPASSWORD), which node-postgres reads by itself.
const { Pool } = require('pg');
const logger = require('./logger');

const pool = new Pool({
  max: Number(process.env.PG_POOL_MAX || 10),
  idleTimeoutMillis: 30000,
  connectionTimeoutMillis: Number(process.env.PG_CONNECT_TIMEOUT_MS || 2000),
  statement_timeout: Number(process.env.PG_STATEMENT_TIMEOUT_MS || 5000),
  query_timeout: Number(process.env.PG_STATEMENT_TIMEOUT_MS || 5000) + 1000,
  application_name: 'recs-api',
});

// an idle client losing its server (PostgreSQL restarted) must not crash the process
pool.on('error', (err) => logger.error({ err }, 'idle PostgreSQL client error'));

module.exports = pool;
