#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs the whole vkvit test suite (ctest).
# Usage: scripts/test.sh [extra ctest arguments]   Build folder: $VKVIT_BUILD_DIR (default build/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VKVIT_BUILD_DIR:-$root/build}

"$root/scripts/install-deps.sh"

# The Vulkan loader wants a runtime dir; headless CI machines often have none.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$(nproc)"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
