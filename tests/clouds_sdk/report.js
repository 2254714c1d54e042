// What every npm client script of tests/clouds_sdk.rs reports: one JSON object on stdout, as
// report.py does for the Python ones:
//   {"client": {"name": "version", ...}, "steps": {"NAME": {"ok": VALUE, "seconds": S} |
//     {"error": "Type: message", "type": "Type", "status": HTTP status or null, "seconds": S}}}
// A missing package is reported as {"missing": "what to install"} and nothing else.
'use strict';

const path = require('path');

/** Requires `name` from this directory's node_modules, or reports what to install and exits. */
function need(name) {
  try {
    return require(name);
  } catch (e) {
    console.log(JSON.stringify({
      missing: `${name} (npm ci in ${__dirname}; tests/run.sh does): ${e.message}`,
    }));
    process.exit(0);
  }
}

/** The installed version of `name`. */
function version(name) {
  try {
    return require(path.join(__dirname, 'node_modules', name, 'package.json')).version;
  } catch {
    return 'unknown';
  }
}

class Report {
  constructor(versions) {
    this.out = { client: versions, steps: {} };
  }

  /** Runs `action` (async), records its value or its error, and gives the value (or null). */
  async step(name, action) {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const value = await action();
      this.out.steps[name] = { ok: value, seconds: seconds() };
      return value;
    } catch (e) {
      const type = (e && e.constructor && e.constructor.name) || typeof e;
      const status = (e && (e.status || e.statusCode || (e.response && e.response.status))) || null;
      this.out.steps[name] = {
        error: `${type}: ${e && e.message}`,
        type,
        status,
        seconds: seconds(),
        trace: String((e && e.stack) || '').split('\n').slice(0, 5).join('\n'),
      };
      return null;
    }
  }

  done() {
    console.log(JSON.stringify(this.out));
  }
}

module.exports = { need, version, Report };
