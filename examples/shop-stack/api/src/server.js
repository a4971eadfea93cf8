'use strict';
const crypto = require('crypto');
const express = require('express');
const logger = require('./logger');
const pool = require('./db');
const cache = require('./cache');
const { personalised, getTopRecommendations } = require('./recommendations');

const PORT = Number(process.env.PORT || 8000);
const DOWNGRADE = () => process.env.DOWNGRADE_MODE === 'true';
const USER_RE = /^[A-Za-z0-9._-]{1,64}$/;
const VERSION = require('../package.json').version;
const started = Date.now();

const app = express();
app.disable('x-powered-by');
app.set('trust proxy', 'loopback, uniquelocal');

// one JSON line per request (successful health checks are not logged: the healthcheck calls every 5 s)
app.use((req, res, next) => {
  const t0 = process.hrtime.bigint();
  req.id = req.get('x-request-id') || crypto.randomUUID();
  res.set('X-Request-Id', req.id);
  res.on('finish', () => {
    const entry = {
      req_id: req.id, method: req.method, path: req.originalUrl, status: res.statusCode,
      duration_ms: Math.round(Number(process.hrtime.bigint() - t0) / 1e4) / 100, remote: req.ip,
      ...res.locals.log,
    };
    if (res.statusCode >= 500) logger.error(entry, 'request failed');
    else if (req.path !== '/health' || res.statusCode !== 200) logger.info(entry, 'request');
  });
  next();
});

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await withTimeout(fn(), 1000, name);
    return [name, { status: 'up', latency_ms: Date.now() - t0 }];
  } catch (err) {
    return [name, { status: 'down', latency_ms: Date.now() - t0, error: err.message }];
  }
}

app.get('/health', async (req, res) => {
  const deps = Object.fromEntries(await Promise.all([
    check('postgres', () => pool.query('SELECT 1')),
    check('redis', () => cache.redis.ping()),
  ]));
  const down = Object.keys(deps).filter((k) => deps[k].status !== 'up');
  res.status(down.length ? 503 : 200).json({
    status: down.length ? 'degraded' : 'ok',
    dependencies: deps,
    downgrade_mode: DOWNGRADE(),
    uptime_s: Math.round((Date.now() - started) / 1000),
    version: VERSION,
  });
});

app.get('/api/recommendations/:user', async (req, res, next) => {
  const { user } = req.params;
  const limit = req.query.limit === undefined ? 10 : Number(req.query.limit);
  if (!USER_RE.test(user)) return res.status(400).json({ error: 'invalid user id' });
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) return res.status(400).json({ error: 'limit must be an integer from 1 to 100' });
  res.locals.log = { user };
  try {
    if (DOWNGRADE()) {
      const recommendations = getTopRecommendations(limit);
      return send(res, { user, count: recommendations.length, recommendations, source: 'static' });
    }
    let cached = null;
    try {
      cached = await cache.get(user, limit);
    } catch (err) {
      logger.warn({ err, user }, 'cache read failed, using the database');
    }
    if (cached) return send(res, { user, count: cached.recommendations.length, recommendations: cached.recommendations, source: 'cache' });
    const recommendations = await personalised(user, limit);
    if (recommendations.length) {
      cache.put(user, limit, { user, recommendations, computed_at: new Date().toISOString() })
        .catch((err) => logger.warn({ err, user }, 'cache write failed'));
    }
    return send(res, { user, count: recommendations.length, recommendations, source: 'db' });
  } catch (err) {
    return next(err);
  }
});

function send(res, body) {
  Object.assign(res.locals.log, { source: body.source, count: body.count });
  return res.json(body);
}

app.post('/api/recommendations/clear-cache', async (req, res, next) => {
  try {
    const cleared = await cache.clear();
    logger.info({ cleared }, 'recommendation cache cleared');
    res.json({ cleared });
  } catch (err) {
    next(err);
  }
});

app.use((req, res) => res.status(404).json({ error: 'not found' }));

// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  logger.error({ err, req_id: req.id, path: req.originalUrl }, 'unhandled error');
  res.status(503).json({ error: 'recommendations unavailable', request_id: req.id });
});

const server = app.listen(PORT, () => logger.info({ port: PORT, downgrade_mode: DOWNGRADE() }, 'recs-api listening'));
server.keepAliveTimeout = 65000;

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  const force = setTimeout(() => process.exit(1), 8000);
  force.unref();
  server.close(() => {
    Promise.allSettled([pool.end(), cache.redis.quit()]).then(() => process.exit(0));
  });
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled promise rejection'));
process.on('uncaughtException', (err) => {
  logger.fatal({ err }, 'uncaught exception');
  process.exit(1);
});
