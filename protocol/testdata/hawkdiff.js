const fs = require('fs');
// Differential oracle for TestDifferentialAgainstHawk: runs the inputs through
// hawk 9's own header parser, its bewit regexp, Node's base64+JSON.parse and
// Number#toString, and writes what they say.
const utils = require(process.argv[4]);
const inp = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const msg = e => e.isBoom ? e.output.payload.error + (e.output.payload.message ? ': ' + e.output.payload.message : '') : 'ERR ' + e.message;
const out = {};
out.headers = inp.headers.map(h => {
  try {
    const a = utils.parseAuthorizationHeader(h);
    if (!a.id || !a.ts || !a.nonce || !a.mac) return {err: 'Bad Request: Missing attributes'};
    return {attrs: a};
  } catch (e) { return {err: msg(e)}; }
});
out.bewits = inp.resources.map(r => {
  const has = /^\/.*[?&]bewit=/.test(r);
  const m = r.match(/^(\/.*)([\?&])bewit\=([^&$]*)(?:&(.+))?$/);
  if (!m) return {has, match: false};
  let url = m[1]; if (m[4]) url += m[2] + m[4];
  return {has, match: true, value: m[3], url};
});
out.exts = inp.exts.map(x => {
  try { const v = JSON.parse(Buffer.from(x, 'base64').toString('utf-8')); return {ok: true, isNull: v === null}; }
  catch (e) { return {ok: false}; }
});
out.numbers = inp.numbers.map(n => String(n));
out.lengths = inp.strings.map(s => s.length);
fs.writeFileSync(process.argv[3], JSON.stringify(out));
