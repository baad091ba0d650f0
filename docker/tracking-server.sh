#!/bin/sh
# The MLflow tracking server with MLflow's basic-auth app: registry and runs in MLFLOW_BACKEND_STORE_URI,
# artifacts served from MLFLOW_ARTIFACTS_DESTINATION (default /mlflow/artifacts, a volume), users and permissions
# in MLFLOW_AUTH_DATABASE_URI. Arguments go to `mlflow server` (--host, --port, --workers, --allowed-hosts ...).
# The admin user is created on the first start from MLFLOW_AUTH_ADMIN_USERNAME / MLFLOW_AUTH_ADMIN_PASSWORD;
# MLFLOW_FLASK_SERVER_SECRET_KEY signs the auth app's CSRF tokens and must be the same on every server.
# A checked password is cached for MLFLOW_AUTH_CACHE_TTL_SECONDS (default 60; 0 turns the cache off): the hash
# check costs hundreds of milliseconds on every request otherwise. Changes made through the server's API take
# effect at once on the worker that made them, on the other workers within the TTL.
set -eu

: "${MLFLOW_BACKEND_STORE_URI:?set MLFLOW_BACKEND_STORE_URI (e.g. postgresql+psycopg://user:password@host/mlflow)}"
: "${MLFLOW_AUTH_DATABASE_URI:?set MLFLOW_AUTH_DATABASE_URI (e.g. postgresql+psycopg://user:password@host/mlflow_auth)}"
: "${MLFLOW_FLASK_SERVER_SECRET_KEY:?set MLFLOW_FLASK_SERVER_SECRET_KEY (any long random string)}"
export MLFLOW_ARTIFACTS_DESTINATION="${MLFLOW_ARTIFACTS_DESTINATION:-/mlflow/artifacts}"

# MLflow reads the auth app's database from an ini file only; it holds a password, so it is written at start,
# readable by this user alone, and never baked into the image.
# The file is read by configparser, to which % is special (a URL-encoded password has some).
auth_uri="$(printf '%s' "$MLFLOW_AUTH_DATABASE_URI" | sed 's/%/%%/g')"
umask 077
config_dir="$(mktemp -d)"
cat > "$config_dir/basic_auth.ini" <<EOF
[mlflow]
default_permission = ${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
database_uri = ${auth_uri}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
grant_default_workspace_access = false
auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}
EOF
export MLFLOW_AUTH_CONFIG_PATH="$config_dir/basic_auth.ini"

exec mlflow server --app-name basic-auth --serve-artifacts "$@"
