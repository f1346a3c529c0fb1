#!/bin/sh
# Regenerate tests/x86_alu_vectors.json from the CPU this runs on (needs gcc and
# GNU as; the Deno tests only read the JSON). Usage: tests/oracle/native_flags.sh
set -e
cd "$(dirname "$0")/../.."
unset RUST_BACKTRACE
PATH="$PWD/node_modules/.bin:$PATH" deno run -A tests/oracle/gen_vectors.ts
