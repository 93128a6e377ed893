#!/usr/bin/env bash
# Installs SwiftShader, a second CPU Vulkan driver beside lavapipe (subgroup size 4, no
# shaderInt64, no fp16), into a cache folder, and prints the path of its ICD file:
#   VK_ICD_FILENAMES=$(scripts/install-swiftshader.sh) build/src/vkvit devices
# The driver comes from the npm package @sparticuz/chromium (pinned below), whose
# bin/swiftshader.tar.br holds libvk_swiftshader.so and vk_swiftshader_icd.json; node's zlib
# unpacks the brotli archive. Nothing is installed system-wide except npm itself when missing.
# Folder: $VKVIT_SWIFTSHADER_DIR, default ${XDG_CACHE_HOME:-~/.cache}/vkvit/swiftshader-<version>.
set -euo pipefail

version=153.0.0
dir=${VKVIT_SWIFTSHADER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vkvit/swiftshader-$version}
icd=$dir/vk_swiftshader_icd.json

if [ -f "$icd" ] && [ -f "$dir/libvk_swiftshader.so" ]; then
  echo "$icd"
  exit 0
fi

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "install-swiftshader: installing npm (Debian package)" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
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
echo "$icd"
