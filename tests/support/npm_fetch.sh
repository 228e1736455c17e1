#!/usr/bin/env bash
# Installs npm packages for tests into an ignored folder of the repository (never committed):
#   tests/support/npm_fetch.sh PKG@VERSION [PKG@VERSION ...]
# into ${CKPT_NPM_DIR:-<repo>/.deps/npm} (node_modules/<PKG> below it). Already installed at the
# asked version: nothing is fetched. Concurrent callers are serialized by a lock on the folder.
# Exit status: 0 installed, 2 the registry could not be reached (callers skip loudly), 1 other
# errors (bad arguments, a version that does not exist, a broken install).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
dir="${CKPT_NPM_DIR:-$repo/.deps/npm}"
if [ $# -eq 0 ]; then echo "usage: npm_fetch.sh PKG@VERSION..." >&2; exit 1; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm_fetch: npm is not installed (apt-get install npm)" >&2; exit 2
fi
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

installed_version() {  # PKG -> version of node_modules/PKG, empty when absent
  local pj="$dir/node_modules/$1/package.json"
  [ -f "$pj" ] && python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$pj" || true
}

missing=()
for spec in "$@"; do
  name="${spec%@*}"; version="${spec##*@}"
  if [ -z "$name" ] || [ "$name" = "$spec" ]; then
    echo "npm_fetch: '$spec' is not PKG@VERSION" >&2; exit 1
  fi
  [ "$(installed_version "$name")" = "$version" ] || missing+=("$spec")
done
[ ${#missing[@]} -eq 0 ] && exit 0

[ -f "$dir/package.json" ] || echo '{"private": true}' > "$dir/package.json"
log="$dir/.npm-install.log"
if ! npm install --prefix "$dir" --save-exact --no-audit --no-fund --loglevel=error "${missing[@]}" >"$log" 2>&1; then
  if grep -qE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ECONNRESET|network' "$log"; then
    echo "npm_fetch: the npm registry is unreachable (see $log)" >&2; exit 2
  fi
  echo "npm_fetch: npm install ${missing[*]} failed:" >&2; tail -n 20 "$log" >&2; exit 1
fi
for spec in "${missing[@]}"; do
  name="${spec%@*}"; version="${spec##*@}"
  got="$(installed_version "$name")"
  if [ "$got" != "$version" ]; then
    echo "npm_fetch: $name installed as '$got', not $version" >&2; exit 1
  fi
done
