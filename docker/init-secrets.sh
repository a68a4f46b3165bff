#!/usr/bin/env bash
# Makes the files docker/compose.yaml mounts, once: under keys/dev/
# (git-ignored) the development key pairs (`ketenbroker keys init`, which
# includes the policy-signer's ES256 pair) and the PostgreSQL password with
# the matching pgpass line the broker's libpq reads; and under var/
# (git-ignored) the signed policy bundle OPA and the broker load.
# Existing key and password files are kept; the bundle is rewritten from
# policies/ and the convenant, so run this again after changing either.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=keys/dev
# Private halves are written mode 0600 by `keys init` itself; public JWKS
# stay readable, the containers mount them as they are.
ketenbroker="${KETENBROKER_BIN:-.venv/bin/ketenbroker}"
"$ketenbroker" keys init --if-missing --dir "$dir"

# Signed here, where the policy-signer's private key is; the containers get
# only the bundle and the public key (docker/README.md, "Which policy decides").
"$ketenbroker" policy bundle --dir "$dir" --out var/policy-bundle.tar.gz

umask 077 # the password files below are for their owner only
if [ ! -s "$dir/postgres-password" ]; then
  # URL-safe alphabet: no ':' or '\' that pgpass would need escaped.
  python3 -c 'import secrets; print(secrets.token_urlsafe(32), end="")' >"$dir/postgres-password"
fi
# host:port:database:user:password (PostgreSQL docs, "The Password File").
printf 'postgres:5432:ketenbroker:ketenbroker:%s\n' "$(cat "$dir/postgres-password")" \
  >"$dir/postgres.pgpass"
echo "secrets ready in $dir, signed policy bundle in var/policy-bundle.tar.gz"
