# Sourced by the CI scripts that run the contract's Python tools: puts the pinned tools of
# openapi/requirements.txt into a virtualenv (the active one if any, else $OPENAPI_VENV,
# default $TMPDIR/resonance-openapi-venv), never into the system Python, and sets $venv.
venv="${VIRTUAL_ENV:-${OPENAPI_VENV:-${TMPDIR:-/tmp}/resonance-openapi-venv}}"
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 has no venv module without this package.
    command -v apt-get >/dev/null 2>&1 || { echo "python3 -m venv is unavailable" >&2; exit 1; }
    echo "installing: python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r openapi/requirements.txt
