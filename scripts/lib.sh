# Shared by scripts/start and scripts/test (sourced, not run): find the repository root, make
# the virtualenv, install the project when pyproject.toml changed, and build the web UI.
# shellcheck shell=bash

QD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QD_VENV="$QD_ROOT/.venv"
QD_PY="$QD_VENV/bin/python"

qd_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
qd_die() {
  printf '\n\033[1;31mERROR: %s\033[0m\n\n' "$*" >&2
  exit 1
}

# A Python >= 3.11: $PYTHON if given, else the first of python3, python3.13, python3.12,
# python3.11 that is new enough.
qd_find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

qd_ensure_venv() {
  if [ -x "$QD_PY" ] && "$QD_PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    return 0
  fi
  local python
  python="$(qd_find_python)" ||
    qd_die "QuantDesk needs Python >= 3.11 (python3 is $(python3 --version 2>&1 || echo missing)). Install it (Debian/Ubuntu: apt-get install python3 python3-venv) or set PYTHON=/path/to/python3.11+."
  [ -e "$QD_VENV" ] && qd_say "Replacing $QD_VENV (no usable Python >= 3.11 in it)" && rm -rf "$QD_VENV"
  qd_say "Creating $QD_VENV with $python ($("$python" --version 2>&1))"
  "$python" -m venv "$QD_VENV" ||
    qd_die "Could not create the virtualenv. On Debian/Ubuntu install the venv module: apt-get install python3-venv"
}

# Install the project (extras: "" or "dev") unless the stamp says this pyproject.toml is
# already installed. A "dev" install also satisfies a plain one.
qd_ensure_installed() {
  local extras="${1:-}" hash spec stamp
  hash="$("$QD_PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$QD_ROOT/pyproject.toml")"
  stamp="$QD_VENV/.quantdesk-installed${extras:+-$extras}"
  if [ -x "$QD_VENV/bin/quantdesk" ]; then
    [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ] && return 0
    [ -z "$extras" ] && [ "$(cat "$QD_VENV/.quantdesk-installed-dev" 2>/dev/null)" = "$hash" ] && return 0
  fi
  spec="."
  [ -n "$extras" ] && spec=".[$extras]"
  qd_say "Installing QuantDesk ($spec) into .venv (pyproject.toml changed since the last install)"
  (cd "$QD_ROOT" && "$QD_PY" -m pip install --disable-pip-version-check --progress-bar off -q -e "$spec") ||
    qd_die "pip install -e '$spec' failed (see above)."
  echo "$hash" >"$stamp"
}

qd_has_frontend() { [ -f "$QD_ROOT/frontend/package.json" ]; }

# True when frontend/package.json defines the npm script $1.
qd_npm_has_script() {
  (cd "$QD_ROOT/frontend" &&
    node -e 'process.exit((require("./package.json").scripts || {})[process.argv[1]] ? 0 : 1)' "$1")
}

# node_modules, (re)installed when package.json or the lock file is newer than the last install.
qd_ensure_frontend_deps() {
  local fe="$QD_ROOT/frontend" marker="$QD_ROOT/frontend/node_modules/.quantdesk-installed"
  if [ -f "$marker" ] && [ -z "$(find "$fe/package.json" "$fe/package-lock.json" -newer "$marker" 2>/dev/null)" ]; then
    return 0
  fi
  qd_say "Installing the web UI's npm packages"
  if [ -f "$fe/package-lock.json" ]; then
    (cd "$fe" && npm ci --no-audit --no-fund) || qd_die "npm ci failed in frontend/ (see above)."
  else
    (cd "$fe" && npm install --no-audit --no-fund) || qd_die "npm install failed in frontend/ (see above)."
  fi
  mkdir -p "$fe/node_modules" && touch "$marker"
}

# frontend/dist, rebuilt when missing or older than any source or config file.
qd_ensure_frontend_build() {
  local fe="$QD_ROOT/frontend" built="$QD_ROOT/frontend/dist/index.html" newer
  if [ -f "$built" ]; then
    # Sources and build config only: test reports and caches elsewhere must not force a build.
    local sources=() f
    for f in "$fe"/src "$fe"/public "$fe"/index.html "$fe"/package.json "$fe"/package-lock.json \
      "$fe"/vite.config.* "$fe"/tsconfig*.json; do
      [ -e "$f" ] && sources+=("$f")
    done
    newer="$(find "${sources[@]}" -type f -newer "$built" -print -quit 2>/dev/null)"
    [ -z "$newer" ] && return 0
  fi
  qd_say "Building the web UI (frontend/dist)"
  (cd "$fe" && npm run build) || qd_die "npm run build failed in frontend/ (see above)."
}

# The browser of the web UI's Playwright tests: Debian's chromium (QUANTDESK_CHROMIUM overrides
# the path). Playwright never downloads its own browsers here, so a missing one is an error.
qd_require_chromium() {
  local chromium="${QUANTDESK_CHROMIUM:-/usr/bin/chromium}"
  [ -x "$chromium" ] ||
    qd_die "The web UI's end-to-end tests need Chromium at $chromium, which is missing. Install it: apt-get install -y --no-install-recommends chromium (or set QUANTDESK_CHROMIUM to a Chromium binary). .ci/run installs it."
}
