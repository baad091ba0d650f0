# PostgreSQL 15 from Debian's packages, for the compose stack: the prediction log and decision tables (database
# pricewise), the MLflow tracking server's backend (mlflow) and its users (mlflow_auth). Any PostgreSQL 13+ can
# take its place (README, "Deploy"). Build from the repository root:
#   docker build -f docker/postgres.Dockerfile -t pricewise-postgres .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# Debian's package creates a cluster on install; the entry point makes its own in the data volume instead.
RUN set -eu; \
    apt-get update -qq; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
      /var/lib/postgresql/15 /etc/postgresql/15; \
    install -d -o postgres -g postgres -m 2775 /var/run/postgresql /var/lib/postgresql/data
COPY docker/postgres-entrypoint.sh /usr/local/bin/pricewise-postgres
ENV PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=5 \
    CMD /usr/lib/postgresql/15/bin/pg_isready -q -h 127.0.0.1 -p "${POSTGRES_PORT:-5432}"
ENTRYPOINT ["/usr/local/bin/pricewise-postgres"]
