'use strict';

// scopes.js — batch oracle over taskcluster-lib-scopes@11 for the
// differential tests. Input: an array of {op, args}; output: one outcome per
// case (see lib/run.js). Ops:
//
//   normalize(set)              sort (scopeCompare) a copy, then normalizeScopeSet
//   sort(set)                   a copy sorted with scopeCompare
//   merge(a, b)                 mergeScopeSets(a, b), inputs used exactly as given
//   union(a, b)                 scopeUnion on copies (it sorts its arguments in place)
//   intersection(a, b)          scopeIntersection(a, b)
//   patternMatch(pattern, s)    does one scope satisfy another
//   satisfies(set, expr)        satisfiesExpression
//   unsatisfied(set, expr)      removeGivenScopes (null = satisfied)
//   scopesSatisfying(set, expr) scopesSatisfying (undefined = not satisfied)
//   scopeCompare(a, b)          -1, 0 or 1
//   validScope(s)               validScope
//   validExpression(expr)       validExpression, false instead of its assertion error
//   simplify(expr)              simplifyScopeExpression

const {main} = require('./lib/run');
const scopes = require('taskcluster-lib-scopes');

const sorted = (set) => [...set].sort(scopes.scopeCompare);

const ops = {
  normalize: (set) => scopes.normalizeScopeSet(sorted(set)),
  sort: (set) => sorted(set),
  merge: (a, b) => scopes.mergeScopeSets(a, b),
  union: (a, b) => scopes.scopeUnion([...a], [...b]),
  intersection: (a, b) => scopes.scopeIntersection(a, b),
  patternMatch: (pattern, scope) => scopes.patternMatch(pattern, scope),
  satisfies: (set, expr) => scopes.satisfiesExpression(set, expr),
  unsatisfied: (set, expr) => scopes.removeGivenScopes(set, expr),
  scopesSatisfying: (set, expr) => scopes.scopesSatisfying(set, expr),
  scopeCompare: (a, b) => Math.sign(scopes.scopeCompare(a, b)),
  validScope: (s) => scopes.validScope(s),
  validExpression: (expr) => {
    try {
      return scopes.validExpression(expr);
    } catch (err) {
      return false;
    }
  },
  simplify: (expr) => scopes.simplifyScopeExpression(expr),
};

const handlers = {};
for (const [name, fn] of Object.entries(ops)) {
  handlers[name] = (c) => fn(...(c.args || []));
}

main(handlers);
