# vidgen API image (DESIGN §8): `docker build -t vidgen .`, or `docker-compose up` (see
# docker-compose.yml). Two stages: `build` installs the project into a virtualenv, the final
# stage gets only that virtualenv and the migrations — no compiler, no pip cache, no build tree.

# ---- build: the project and its dependencies in /opt/venv -------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Every dependency (asyncpg, uvloop, httptools, cryptography, pydantic-core…) ships a
# manylinux wheel for CPython 3.11, so this stage needs no compiler either.
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY app ./app
# A regular (non-editable) install: `app/` with its package data (catalog/*.json,
# fal/simulator/*.mp4) lands in site-packages, byte-compiled (the runtime user cannot write
# there); the console script `vidgen` in /opt/venv/bin.
RUN /opt/venv/bin/pip install --no-cache-dir .

# ---- runtime ----------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

# `vidgen backup create|restore` run pg_dump and psql, and pg_dump must be at least the
# server's major version: the client is pinned to major 15, matching `db` (postgres:15) in
# docker-compose.yml. The exact Debian revision is not pinned, so security updates apply and
# the build does not break when the mirror drops a superseded revision.
RUN apt-get update \
    && apt-get install -y --no-install-recommends 'postgresql-client-15=15.*' \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid, so bind-mounted volumes can be chowned to it on the host.
RUN groupadd --system --gid 10001 vidgen \
    && useradd --system --no-log-init --uid 10001 --gid vidgen \
        --home-dir /app --shell /usr/sbin/nologin vidgen

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    APP_ENV=production \
    MIGRATIONS_DIR=/app/migrations \
    BACKUP_DIR=/app/backups \
    MEDIA_DIR=/app/media

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The app finds its migrations through MIGRATIONS_DIR (it is not installed as a package).
COPY migrations /app/migrations
# BACKUP_DIR and MEDIA_DIR belong to the app user; a named volume mounted there starts with
# this owner.
RUN mkdir -p /app/backups /app/media && chown vidgen:vidgen /app/backups /app/media

# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8000

# 200 from /readyz means the app is up, reaches the database and is not behind its schema (a
# database ahead of the code, mid-rollout, is fine); urlopen raises (and the check fails) on a
# 503 or no answer. Python's stdlib, so the image needs no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)"]

CMD ["vidgen", "serve", "--host", "0.0.0.0", "--port", "8000"]
