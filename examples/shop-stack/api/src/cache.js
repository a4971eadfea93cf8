'use strict';
// Redis: the recommendation cache. Commands fail fast while Redis is unreachable (no offline
// queue), so a Redis outage slows nothing down: recommendations come from PostgreSQL instead.
const Redis = require('ioredis');
const logger = require('./logger');

const redis = new Redis(process.env.REDIS_URL || 'redis://127.0.0.1:6379/0', {
  connectTimeout: 2000,
  commandTimeout: Number(process.env.REDIS_COMMAND_TIMEOUT_MS || 500),
  maxRetriesPerRequest: 1,
  enableOfflineQueue: false,
  retryStrategy: (times) => Math.min(times * 200, 2000),
});

let lastState = null;
function state(next, err) {
  if (next === lastState) return;
  lastState = next;
  if (next === 'ready') logger.info('redis connection ready');
  else logger.warn({ err }, 'redis connection lost');
}
redis.on('ready', () => state('ready'));
redis.on('error', (err) => state('down', err));
redis.on('end', () => state('down'));

const PREFIX = process.env.CACHE_PREFIX || 'shop:recs:';
const TTL = Number(process.env.CACHE_TTL_SECONDS || 300);

function key(user, limit) {
  return `${PREFIX}${user}:${limit}`;
}

async function get(user, limit) {
  const raw = await redis.get(key(user, limit));
  return raw ? JSON.parse(raw) : null;
}

async function put(user, limit, value) {
  await redis.set(key(user, limit), JSON.stringify(value), 'EX', TTL);
}

async function clear() {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}

module.exports = { redis, get, put, clear, key };
