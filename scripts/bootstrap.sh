#!/usr/bin/env bash
# Install what `make run` / `make test` need on a fresh machine, and nothing twice:
# uv (from PyPI), the Debian packages in scripts/system-packages.txt, then the locked
# Python environment (.venv) for the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv" >&2
  python3 -m pip install --quiet "uv>=0.5"
fi

mapfile -t wanted < <(grep -v '^\s*#' scripts/system-packages.txt | tr -s ' \t' '\n' | sed '/^$/d')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "bootstrap: please install these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  echo "bootstrap: apt-get install ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m uv sync --all-packages --all-extras --frozen --quiet
