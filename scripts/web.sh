#!/usr/bin/env bash
# The web UI (api/web): a React + TypeScript app built by Vite into api/web/dist, which is
# committed and embedded in attendance-api (so running the API needs no Node.js).
#
#   scripts/web.sh build   npm ci if needed, regenerate the API types from the OpenAPI
#                          snapshot, type-check, build api/web/dist
#   scripts/web.sh check   build, then fail if the committed bundle or API types differ
#                          from what the sources give (a stale bundle cannot slip in)
#   scripts/web.sh test    Vitest unit tests, then the Playwright end-to-end tests in
#                          Debian's Chromium (installed if missing) against a real
#                          target/debug/attendance-api (build the workspace first);
#                          screenshots in target/ui-screenshots/
set -euo pipefail
cd "$(dirname "$0")/../api/web"

# Node 20.19+ (Vite 7); Chromium comes from Debian, never from a test tool's download.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
node_ok=$(node -e 'const [a,b]=process.versions.node.split(".").map(Number); console.log(a>20||(a===20&&b>=19))' 2>/dev/null || echo false)
if [ "$node_ok" != true ]; then
  echo "error: the web UI needs Node.js 20.19 or newer with npm (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

deps() {
  # npm ci only when the lock file changed since the last install.
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

chromium_bin() {
  if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  command -v chromium
}

case "${1:-}" in
  build)
    deps
    npm run build
    ;;
  check)
    deps
    npm run build
    changed=$(git status --porcelain -- dist src/api/schema.d.ts)
    if [ -n "$changed" ]; then
      echo "error: api/web/dist or src/api/schema.d.ts is not what the sources build:" >&2
      echo "$changed" >&2
      echo "run scripts/web.sh build and commit the result" >&2
      exit 1
    fi
    echo "api/web/dist matches its sources"
    ;;
  test)
    deps
    CHROMIUM=$(chromium_bin)
    export CHROMIUM
    npx vitest run
    npx playwright test
    ;;
  *)
    echo "usage: scripts/web.sh build|check|test" >&2
    exit 2
    ;;
esac
