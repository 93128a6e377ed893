#!/usr/bin/env bash
# Installs SwiftShader, a second CPU Vulkan driver beside lavapipe (subgroup size 4, no
# shaderInt64, no fp16), into a cache folder, and prints the path of its ICD file:
#   VK_ICD_FILENAMES=$(scripts/install-swiftshader.sh) build/src/vkvit devices   # SwiftShader alone
#   scripts/install-swiftshader.sh && build/src/vkvit devices               # lavapipe and SwiftShader
# The driver comes from the npm package @sparticuz/chromium (pinned below), whose
# bin/swiftshader.tar.br holds libvk_swiftshader.so and vk_swiftshader_icd.json; node's zlib
# unpacks the brotli archive. Nothing is installed system-wide except npm itself when missing; the
# driver is registered for this user only (below).
# Folder: $VKVIT_SWIFTSHADER_DIR, default ${XDG_CACHE_HOME:-~/.cache}/vkvit/swiftshader-<version>.
set -euo pipefail

version=153.0.0
dir=${VKVIT_SWIFTSHADER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkvit/swiftshader-$version}
icd=$dir/vk_swiftshader_icd.json

install_driver() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      echo "install-swiftshader: installing npm (Debian package)" >&2
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2
    else
      echo "install-swiftshader: npm and node are missing: install them (Debian: apt-get install npm) and run again" >&2
      exit 1
    fi
  fi

  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "install-swiftshader: fetching @sparticuz/chromium@$version (about 70 MB) for its SwiftShader" >&2
  (cd "$work" && npm pack --silent "@sparticuz/chromium@$version" >/dev/null)
  tar -xzf "$work"/sparticuz-chromium-$version.tgz -C "$work" package/bin/swiftshader.tar.br
  node -e 'const fs = require("fs"), zlib = require("zlib");
           fs.writeFileSync(process.argv[2], zlib.brotliDecompressSync(fs.readFileSync(process.argv[1])));' \
    "$work/package/bin/swiftshader.tar.br" "$work/swiftshader.tar"
  mkdir -p "$work/out"
  tar -xf "$work/swiftshader.tar" -C "$work/out" libvk_swiftshader.so vk_swiftshader_icd.json
  # The ICD names its library relative to itself ("./libvk_swiftshader.so"), so the two files move
  # together; the folder appears whole or not at all.
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir.tmp"
  mv "$work/out" "$dir.tmp"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
}

if [ ! -f "$icd" ] || [ ! -f "$dir/libvk_swiftshader.so" ]; then
  install_driver
fi

# Registered with the Vulkan loader for this user (its per-user driver folder), so that `vkvit
# devices` lists SwiftShader beside lavapipe; vkvit's default choice stays lavapipe (64-bit
# integers and fp16), and VK_ICD_FILENAMES=<the printed path> selects SwiftShader alone. This
# manifest names the library by absolute path. --no-register skips it; deleting the file undoes it.
if [ "${1:-}" != "--no-register" ]; then
  registry=${XDG_DATA_HOME:-$HOME/.local/share}/vulkan/icd.d
  mkdir -p "$registry"
  sed "s|\"./libvk_swiftshader.so\"|\"$dir/libvk_swiftshader.so\"|" "$icd" > "$registry/vkvit_swiftshader_icd.json"
fi
echo "$icd"
