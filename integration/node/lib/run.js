'use strict';

// Shared driver for the helper scripts: read one JSON document from stdin
// (an array of cases), run each case through a handler chosen by its `op`,
// and write an array of outcomes to stdout, one per case, in order:
//   {"result": <value>}             the handler returned a value
//   {"result": null, "undefined": true}   the handler returned undefined
//   {"error": "<message>"}          the handler threw
// A case that throws does not stop the batch, so a Go test can send
// thousands of cases in one process start.

const fs = require('fs');

const readInput = () => {
  const text = fs.readFileSync(0, 'utf8');
  const cases = JSON.parse(text);
  if (!Array.isArray(cases)) {
    throw new Error('input must be a JSON array of cases');
  }
  return cases;
};

exports.run = async (handlers, cases) => {
  const out = [];
  for (const c of cases) {
    const handler = Object.prototype.hasOwnProperty.call(handlers, c.op) ? handlers[c.op] : null;
    if (!handler) {
      out.push({error: `unknown op ${JSON.stringify(c.op)}`});
      continue;
    }
    try {
      const result = await handler(c);
      out.push(result === undefined ? {result: null, undefined: true} : {result});
    } catch (err) {
      out.push({error: err && err.message !== undefined ? String(err.message) : String(err)});
    }
  }
  process.stdout.write(JSON.stringify(out));
};

// main reads the cases, then runs them. `handlers` is an object of handlers,
// or an async function returning one (for a script that must import an ES
// module first, after its input is read).
exports.main = (handlers) => {
  let cases;
  try {
    cases = readInput();
  } catch (err) {
    process.stderr.write(`bad input: ${err.message}\n`);
    process.exit(2);
  }
  Promise.resolve(typeof handlers === 'function' ? handlers() : handlers)
    .then(h => exports.run(h, cases))
    .catch(err => {
      process.stderr.write(`${err.stack || err}\n`);
      process.exit(1);
    });
};
