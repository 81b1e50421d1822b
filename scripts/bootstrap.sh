#!/usr/bin/env bash
# Install what `make run` / `make test` need on a fresh machine, and nothing twice:
#   1. the Debian packages in scripts/system-packages.txt (stock Debian 12 included),
#   2. uv, pinned, in its own venv under .tools/ (Debian's python3 is externally managed,
#      PEP 668, so pip may not install into it),
#   3. the locked Python environment (.venv) for the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
TOOLS=.tools

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

if [ "$("$TOOLS/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "bootstrap: installing uv $UV_VERSION into $TOOLS/" >&2
  python3 -m venv --clear "$TOOLS"
  "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

"$TOOLS/bin/uv" sync --all-packages --all-extras --frozen --quiet
