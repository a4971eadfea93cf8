'use strict';
// JSON lines to stdout (docker logs) and, when LOG_FILE is set, appended to that file too.
// The file is opened per line, so a rotated or deleted file is picked up at once and a full
// disk never stops the service: the failure is reported on stdout, once, until writes work again.
const fs = require('fs');
const path = require('path');
const pino = require('pino');

const logFile = process.env.LOG_FILE || '';

function fileStream(file) {
  let failing = false;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
  } catch (err) {
    // reported by the first write below
  }
  return {
    write(line) {
      try {
        fs.appendFileSync(file, line);
        if (failing) {
          failing = false;
          process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: 'log file writable again', file }) + '\n');
        }
      } catch (err) {
        if (!failing) {
          failing = true;
          process.stdout.write(JSON.stringify({
            time: new Date().toISOString(), level: 'error', msg: 'cannot write log file', file,
            err: { type: err.name, code: err.code, message: err.message, stack: err.stack },
          }) + '\n');
        }
      }
    },
  };
}

const streams = [{ level: 'info', stream: process.stdout }];
if (logFile) streams.push({ level: 'info', stream: fileStream(logFile) });

const logger = pino({
  level: process.env.LOG_LEVEL || 'info',
  base: { service: 'recs-api', pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: { level: (label) => ({ level: label }) },
  redact: ['req.headers.authorization', 'password', '*.password'],
}, pino.multistream(streams));

module.exports = logger;
