#!/usr/bin/env bash
# Installs what is missing, configures, builds and runs the whole vkvit test suite (ctest): on
# lavapipe, the GPU tests again at lavapipe's other subgroup sizes and under validation, and on
# SwiftShader (installed by scripts/install-swiftshader.sh).
# Usage: scripts/test.sh [--sanitize] [extra ctest arguments]
#   Build folder: $VKVIT_BUILD_DIR (default build/, or build-asan/ with --sanitize).
#   --sanitize  builds vkvit and its tests with AddressSanitizer + UBSan (CMake VKVIT_SANITIZE=ON)
#               and runs the suite under them; any report fails the test that caused it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

sanitize=0
if [ "${1:-}" = "--sanitize" ]; then
  sanitize=1
  shift
fi

"$root/scripts/install-deps.sh"
# SwiftShader, the second Vulkan driver the GPU tests run on (ctest swiftshader.gpu_tests).
swiftshader_icd=$("$root/scripts/install-swiftshader.sh")

# The Vulkan loader wants a runtime dir; headless CI machines often have none.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

if [ "$sanitize" -eq 0 ]; then
  build=${VKVIT_BUILD_DIR:-$root/build}
  # OFF explicitly: a folder once configured with --sanitize must not stay sanitized.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKVIT_SANITIZE=OFF \
    -DVKVIT_SWIFTSHADER_ICD="$swiftshader_icd"
  cmake --build "$build" -j "$(nproc)"
  cd "$build"
  ctest --output-on-failure -j "$(nproc)" "$@"
  exit 0
fi

build=${VKVIT_BUILD_DIR:-$root/build-asan}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKVIT_SANITIZE=ON
cmake --build "$build" -j "$(nproc)"

# LeakSanitizer reads tests/sanitizers/lsan.supp: the place for leaks inside the Vulkan loader,
# drivers and layers (none of them built with ASan), named by library; vkvit's own code is never
# suppressed. The validation-layer run (validation.gpu_tests) runs under the sanitizers too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
