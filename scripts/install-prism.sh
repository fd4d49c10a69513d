#!/usr/bin/env bash
# Installs Prism (pinned), GitHub's OpenAPI description and the webhook examples into a cache
# directory outside the repository, then writes the trimmed OpenAPI description next to them.
# Idempotent: a second run with everything present does nothing but re-check versions.
#
# Prints the cache directory on the last line. Tests read FM_DEPLOY_PRISM_DIR (default below).
set -euo pipefail

dir="${FM_DEPLOY_PRISM_DIR:-${HOME}/.cache/fm-deploy-testbed/node}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prism_version="5.14.2"   # newer needs Node >= 24
openapi_version="23.0.2"
examples_version="7.6.1"

mkdir -p "$dir"
cd "$dir"
[ -f package.json ] || printf '{"name":"fm-deploy-testbed-node","private":true}\n' > package.json

have() {
  # $1 package name, $2 wanted version or empty for "any"
  local pj="node_modules/$1/package.json"
  [ -f "$pj" ] || return 1
  [ -z "$2" ] && return 0
  node -e "process.exit(require('./$pj').version === '$2' ? 0 : 1)"
}

if ! have @stoplight/prism-cli "$prism_version" || ! have @octokit/openapi "$openapi_version" \
   || ! have @octokit/webhooks-examples "$examples_version"; then
  npm install --no-audit --no-fund --loglevel=error \
    "@stoplight/prism-cli@${prism_version}" "@octokit/openapi@${openapi_version}" \
    "@octokit/webhooks-examples@${examples_version}" >&2
fi

spec="node_modules/@octokit/openapi/generated/api.github.com.json"
trimmed="$dir/github-trimmed.json"
if [ ! -f "$trimmed" ] || [ "$spec" -nt "$trimmed" ] || [ "$here/trim-openapi.js" -nt "$trimmed" ]; then
  node "$here/trim-openapi.js" "$spec" "$trimmed.tmp" >&2
  mv "$trimmed.tmp" "$trimmed"
fi

echo "$dir"
