# Sourced by scripts/test.sh and scripts/loadtest.sh: the Python tools of
# scripts/test-requirements.txt (deployment validators, schemathesis, k6, Locust),
# pinned by hash, in a virtualenv outside the clone ($RAGBRAIN_VENV, default
# ~/.cache/ragbrain/venv), reinstalled when the pins change. Sets $venv.
venv="${RAGBRAIN_VENV:-$HOME/.cache/ragbrain/venv}"
if ! cmp -s scripts/test-requirements.txt "$venv/installed-requirements.txt" 2>/dev/null; then
  echo "==> installing pinned Python test tools into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
    -r scripts/test-requirements.txt
  cp scripts/test-requirements.txt "$venv/installed-requirements.txt"
fi
