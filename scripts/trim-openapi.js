#!/usr/bin/env node
// Trims GitHub's OpenAPI description to the operations fm-deploy calls, plus every $ref they reach
// (schemas, parameters, responses, examples, headers). Usage: trim-openapi.js <in.json> <out.json>
"use strict";
const fs = require("fs");

const USED = {
  "/repos/{owner}/{repo}/check-runs": ["post"],
  "/repos/{owner}/{repo}/check-runs/{check_run_id}": ["patch", "get"],
  "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations": ["get"],
  "/repos/{owner}/{repo}/commits/{ref}/check-runs": ["get"],
  "/repos/{owner}/{repo}/commits/{ref}/status": ["get"],
  "/repos/{owner}/{repo}/pulls/{pull_number}/reviews": ["get"],
  "/repos/{owner}/{repo}/issues": ["get"],
  "/repos/{owner}/{repo}/issues/{issue_number}/events": ["get"],
  "/repos/{owner}/{repo}/contents/{path}": ["get"],
  "/repos/{owner}/{repo}/deployments": ["get", "post"],
  "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses": ["get", "post"],
  "/orgs/{org}/teams/{team_slug}/memberships/{username}": ["get"],
  "/repos/{owner}/{repo}/branches/{branch}/protection": ["get", "put"],
  "/repos/{owner}/{repo}/branches/{branch}/protection/required_signatures": ["post", "delete"],
  "/repos/{owner}/{repo}/environments": ["get"],
  "/repos/{owner}/{repo}/environments/{environment_name}": ["put"],
  "/orgs/{org}/teams/{team_slug}": ["get"],
  "/users/{username}": ["get"],
};

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: trim-openapi.js <in.json> <out.json>");
  process.exit(2);
}
const spec = JSON.parse(fs.readFileSync(input, "utf8"));
const out = { ...spec, paths: {}, components: {} };
delete out["x-webhooks"];
delete out.webhooks;

for (const [p, methods] of Object.entries(USED)) {
  const item = spec.paths[p];
  if (!item) throw new Error(`path ${p} is missing from ${input}`);
  out.paths[p] = {};
  for (const m of methods) {
    if (!item[m]) throw new Error(`operation ${m.toUpperCase()} ${p} is missing from ${input}`);
    out.paths[p][m] = item[m];
  }
  if (item.parameters) out.paths[p].parameters = item.parameters;
}

// One known drift between the description and GitHub: `PUT …/branches/{branch}/protection` marks the
// deprecated `required_status_checks.contexts` as required, while GitHub answers 422 "Invalid request"
// when `contexts` and `checks` are both sent and accepts `checks` alone (google/go-github#2276,
// #2976). fm-deploy sends `checks` only, so `contexts` becomes optional here — nothing else changes.
{
  const put = out.paths["/repos/{owner}/{repo}/branches/{branch}/protection"].put;
  const rsc = put.requestBody.content["application/json"].schema.properties.required_status_checks;
  const before = JSON.stringify(rsc.required);
  if (before !== JSON.stringify(["strict", "contexts"])) {
    throw new Error(`required_status_checks.required changed upstream (${before}); revisit this patch`);
  }
  // A copy, so the input's object is left as it was.
  out.paths["/repos/{owner}/{repo}/branches/{branch}/protection"].put = {
    ...put,
    requestBody: JSON.parse(JSON.stringify(put.requestBody)),
  };
  out.paths["/repos/{owner}/{repo}/branches/{branch}/protection"].put.requestBody.content[
    "application/json"
  ].schema.properties.required_status_checks.required = ["strict"];
}

// Prism matches each `{param}` against one path segment, while GitHub's `{path}` of the contents
// API spans several (`x-multi-segment`): `.github/fm-deploy.yml` would be "no path matched". The same
// operation is also described under 2-, 3- and 4-segment templates; nothing else about it changes.
{
  const route = "/repos/{owner}/{repo}/contents/{path}";
  const get = out.paths[route].get;
  for (let depth = 2; depth <= 4; depth++) {
    const names = Array.from({ length: depth }, (_, i) => `path_${i + 1}`);
    const params = get.parameters.flatMap((p) =>
      p.name === "path"
        ? names.map((n) => ({ ...p, name: n, "x-multi-segment": undefined }))
        : [p]
    );
    out.paths[`/repos/{owner}/{repo}/contents/${names.map((n) => `{${n}}`).join("/")}`] = {
      get: { ...get, operationId: `${get.operationId}-${depth}`, parameters: params },
    };
  }
}

const seen = new Set();
function walk(node) {
  if (Array.isArray(node)) return node.forEach(walk);
  if (!node || typeof node !== "object") return;
  for (const [k, v] of Object.entries(node)) {
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/")) {
      if (seen.has(v)) continue;
      seen.add(v);
      const [, , kind, name] = v.split("/");
      const target = spec.components[kind] && spec.components[kind][name];
      if (!target) throw new Error(`dangling $ref ${v}`);
      out.components[kind] = out.components[kind] || {};
      out.components[kind][name] = target;
      walk(target);
    } else {
      walk(v);
    }
  }
}
walk(out.paths);
if (spec.components.securitySchemes) out.components.securitySchemes = spec.components.securitySchemes;
fs.writeFileSync(output, JSON.stringify(out));
console.error(`trimmed ${Object.keys(spec.paths).length} paths to ${Object.keys(out.paths).length}; ${seen.size} components; ${fs.statSync(output).size} bytes`);
