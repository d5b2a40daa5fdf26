'use strict';

// A settable clock for the reference libraries. hawk@9 (inside
// taskcluster-client) captures `Date.now` when it is first loaded, and
// @hapi/hawk reads it through @hapi/sntp on every call, so this module must be
// required before either library: it replaces Date.now once with a function
// that returns the frozen time when one is set, else the real time. Freezing
// the clock (rather than passing localtimeOffsetMsec) makes boundary cases such
// as "bewit expires exactly now" deterministic.

const realNow = Date.now.bind(Date);
let frozen = null;

Date.now = () => (frozen === null ? realNow() : frozen);

// setNow(ms) freezes the clock at ms since the epoch; setNow(null) unfreezes.
exports.setNow = (ms) => {
  if (ms !== null && ms !== undefined && typeof ms !== 'number') {
    throw new Error('now must be a number of milliseconds');
  }
  frozen = ms === undefined ? null : ms;
};
