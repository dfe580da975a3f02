#!/usr/bin/env bash
# Installs every build and test dependency of KT from Debian 12's own repositories.
# Idempotent and non-interactive: packages already present are skipped by apt-get.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build git pkg-config python3
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  flatbuffers-compiler libflatbuffers-dev
  libhwloc-dev libpcre2-dev nlohmann-json3-dev
  protobuf-compiler libprotobuf-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format time
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "[kt] all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "[kt] installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
