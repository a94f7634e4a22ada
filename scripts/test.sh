#!/usr/bin/env bash
# The whole test suite (after scripts/setup.sh has built everything).
set -euo pipefail
cd "$(dirname "$0")/.."
npx --no-install eslint src test bench
node --test dist/
