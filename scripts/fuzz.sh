#!/usr/bin/env bash
# Builds vkvit's libFuzzer targets (tests/fuzz, clang, ASan + UBSan), writes their seed corpora
# and runs each target in turn for a fixed time, then prints per target: executions, executions
# per second, coverage, and crashes found.
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]   (default 600 s; targets: safetensors
#        config decode, all by default). Build folder: $VKVIT_FUZZ_BUILD_DIR (default build-fuzz/).
# Under the build folder, fuzz/corpus/<target>/ keeps what each run learnt (the next run starts
# from it), fuzz/seeds/ is regenerated every time, and fuzz/crashes/<target>/ holds crashing
# inputs; replay one with: build-fuzz/tests/fuzz/vkvit_fuzz_<target> <file>.
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${VKVIT_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${1:-600}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "fuzz.sh: seconds per target must be a positive whole number, got '$seconds'" >&2
  exit 2
fi
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config decode)
for t in "${targets[@]}"; do
  case "$t" in
    safetensors | config | decode) ;;
    *) echo "fuzz.sh: unknown target '$t'; the targets are safetensors, config, decode" >&2; exit 2 ;;
  esac
done

"$root/scripts/install-deps.sh"
# libFuzzer is clang's: the compiler and the runtime library (libclang_rt.fuzzer) that it links.
extra=(clang-14 libclang-rt-14-dev)
missing=()
for p in "${extra[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "fuzz.sh: missing Debian packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "fuzz.sh: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A build folder configured with another compiler would have CMake drop its cache, and with it
# the options below, on the switch: start such a folder afresh instead.
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKVIT_FUZZ=ON -DVKVIT_BUILD_TESTS=OFF \
  -DCMAKE_CXX_COMPILER=clang++-14 >/dev/null
cmake --build "$build" -j "$(nproc)" --target vkvit_fuzz_seeds $(printf 'vkvit_fuzz_%s ' "${targets[@]}")

work=$build/fuzz
rm -rf "$work/seeds"
"$build/tests/fuzz/vkvit_fuzz_seeds" "$work/seeds" "$root/configs"

# Leaks count as findings too (libFuzzer's default); UBSan reports abort (built with
# -fno-sanitize-recover), so every report becomes a saved crashing input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

summary=()
failed=0
for t in "${targets[@]}"; do
  corpus=$work/corpus/$t crashes=$work/crashes/$t log=$work/$t.log
  mkdir -p "$corpus" "$crashes"
  before=$(find "$crashes" -type f | wc -l)
  echo "fuzz.sh: $t for ${seconds}s (log: $log)" >&2
  set +e
  "$build/tests/fuzz/vkvit_fuzz_$t" "$corpus" "$work/seeds/$t" \
    -dict="$root/tests/fuzz/$t.dict" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  found=$(($(find "$crashes" -type f | wc -l) - before))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  corp=$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' "$log" | tail -1 || true)
  line=$(printf '%-12s runs %-10s exec/s %-7s %-22s %-18s crashes %s' "$t" "${runs:-?}" "${speed:-?}" \
    "${cov:-cov: ?}" "${corp:-corp: ?}" "$found")
  if [ "$found" -gt 0 ] || [ "$rc" -ne 0 ]; then
    failed=1
    line+="  (exit $rc; see $log and $crashes/)"
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:|vkvit fuzz' "$log" >&2 || true
  fi
  summary+=("$line")
done

echo
echo "fuzz.sh: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
exit "$failed"
