#!/usr/bin/env bash
# Build the pricewise image (docker/Dockerfile) and, with `all`, the stack's PostgreSQL image
# (docker/postgres.Dockerfile), from the repository root; prints each build's time and the image's size.
#   docker/build-images.sh [pricewise|postgres|all]
# Settings (environment): IMAGE (pricewise), POSTGRES_IMAGE (pricewise-postgres), BASE_IMAGE (python:3.11-slim;
# the PostgreSQL image uses it too when set, else debian:bookworm-slim), DOCKER (the docker client).
# This machine's pip settings (`pip config`, PIP_* variables) reach the first build stage only, never the image:
# the CA bundle (global.cert / PIP_CERT) as the build secret `pip-cert`, the index and its http(s) extra indexes
# as build arguments, and a find-links directory (global.find-links / PIP_FIND_LINKS), served over HTTP on
# 127.0.0.1 for the duration of the build. PIP_FROM_HOST=0 builds with the Dockerfile's defaults instead.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-pricewise}"
image="${IMAGE:-pricewise}"
postgres_image="${POSTGRES_IMAGE:-pricewise-postgres}"
base="${BASE_IMAGE:-python:3.11-slim}"
postgres_base="${BASE_IMAGE:-debian:bookworm-slim}"

# RUN --mount and --secret need BuildKit: the docker CLI has it built in up to 22.x, later ones through the
# buildx plugin. Take the first client that can use it.
docker_cli=""
for candidate in "${DOCKER:-docker}" /usr/bin/docker; do
  if command -v "$candidate" >/dev/null && DOCKER_BUILDKIT=1 "$candidate" build --help >/dev/null 2>&1; then
    docker_cli="$candidate"
    break
  fi
done
if [ -z "$docker_cli" ]; then
  echo "no docker client with BuildKit found (install docker-buildx, or Debian's docker.io)" >&2
  exit 2
fi
export DOCKER_BUILDKIT=1

pip_config="$(command -v "${PIP:-pip3}" >/dev/null && "${PIP:-pip3}" config list 2>/dev/null || true)"
pip_setting() {  # pip_setting ENV_NAME CONFIG_KEY: the environment's value, else pip's configuration
  local value="${!1:-}"
  if [ -z "$value" ]; then
    value="$(printf '%s\n' "$pip_config" | sed -n "s/^$2='\(.*\)'\$/\1/p" | tail -1)"
  fi
  printf '%s' "$value"
}

build_args=()
secret_args=()
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

if [ "${PIP_FROM_HOST:-1}" != "0" ]; then
  cert="$(pip_setting PIP_CERT global.cert)"
  if [ -n "$cert" ] && [ -s "$cert" ]; then
    secret_args+=(--secret "id=pip-cert,src=$cert")
  fi
  index="$(pip_setting PIP_INDEX_URL global.index-url)"
  if [ -n "$index" ]; then build_args+=(--build-arg "PIP_INDEX_URL=$index"); fi
  # file:// indexes are this machine's own; only those a container can reach are passed on. With a machine
  # configuration the Dockerfile's PyTorch index is replaced, not added to.
  extra=""
  for url in $(pip_setting PIP_EXTRA_INDEX_URL global.extra-index-url); do
    case "$url" in http://* | https://*) extra="${extra:+$extra }$url" ;; esac
  done
  links="$(pip_setting PIP_FIND_LINKS global.find-links)"
  if [ -n "$links" ]; then
    build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
    case "$links" in
      http://* | https://*) build_args+=(--build-arg "PIP_FIND_LINKS=$links") ;;
      *)
        dir="${links#file://}"
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        python3 -m http.server --bind 127.0.0.1 --directory "$dir" "$port" >/dev/null 2>&1 &
        server_pid=$!
        for _ in $(seq 50); do
          python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" \
            2>/dev/null && break
          sleep 0.1
        done
        build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/")
        ;;
    esac
  elif [ -n "$extra" ]; then
    build_args+=(--build-arg "PIP_EXTRA_INDEX_URL=$extra")
  fi
fi

# Build output goes to BUILD_LOG, else to this script's standard error (through a copy of the descriptor: opening
# /dev/stderr anew would truncate a log file that stderr is redirected to).
if [ -n "${BUILD_LOG:-}" ]; then exec 3>"$BUILD_LOG"; else exec 3>&2; fi

size_of() { "$docker_cli" image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

build_pricewise() {
  local start=$SECONDS
  # --network host: the build reaches the find-links server above, and daemons run without a bridge work too.
  "$docker_cli" build --network host --progress plain -f docker/Dockerfile -t "$image" \
    --build-arg "BASE_IMAGE=$base" "${build_args[@]}" "${secret_args[@]}" . >&3 2>&3 \
    || { [ -z "${BUILD_LOG:-}" ] || tail -40 "$BUILD_LOG" >&2; echo "building $image failed" >&2; exit 1; }
  echo "image $image (base $base) built in $((SECONDS - start)) s, $(size_of "$image")"
}

build_postgres() {
  local start=$SECONDS
  "$docker_cli" build --network host --progress plain -f docker/postgres.Dockerfile -t "$postgres_image" \
    --build-arg "BASE_IMAGE=$postgres_base" . >&3 2>&3 \
    || { [ -z "${BUILD_LOG:-}" ] || tail -40 "$BUILD_LOG" >&2; echo "building $postgres_image failed" >&2; exit 1; }
  echo "image $postgres_image (base $postgres_base) built in $((SECONDS - start)) s, $(size_of "$postgres_image")"
}

case "$what" in
  pricewise) build_pricewise ;;
  postgres) build_postgres ;;
  all) build_postgres; build_pricewise ;;
  *) echo "usage: docker/build-images.sh [pricewise|postgres|all]" >&2; exit 2 ;;
esac
