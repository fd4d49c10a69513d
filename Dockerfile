# syntax=docker/dockerfile:1.7
#
# fm-deploy container action image.
#
# Final-stage decision: the gates run Python tools (black, flake8, mypy, bandit, detect-secrets,
# pip-licenses, pytest + coverage, pip-audit, safety) against the checked-out project, so the image
# needs a Python interpreter; distroless/static would push every tool onto each workflow. The final
# stage is therefore python:3.11-slim-bookworm (Python 3.11, the line the parser fixtures were
# produced with) with the tools pip-installed from exact pins into venvs under /opt/fm-deploy; the
# Go scanners (trivy, gitleaks) are copied in from their pinned release images. Nothing is
# downloaded when the action starts.
#
# Runs as root (GitHub mounts the workspace and file-command files owned by the runner; no USER),
# no WORKDIR (GitHub sets --workdir /github/workspace), absolute exec-form ENTRYPOINT.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG TRIVY_IMAGE=aquasec/trivy:0.72.0
ARG GITLEAKS_IMAGE=zricethezav/gitleaks:v8.30.1

# ---- build: one static musl binary, rustls only (no OpenSSL) -------------------------------------
FROM ${RUST_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin fm-deploy \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/fm-deploy /out/fm-deploy

# ---- gate tools: exact pins, three venvs so conflicting pins never meet ---------------------------
FROM ${PYTHON_IMAGE} AS tools
COPY docker/requirements-gates.txt docker/requirements-pip-audit.txt docker/requirements-safety.txt /tmp/req/
RUN set -eux; \
    for v in gates pip-audit safety; do \
      python -m venv "/opt/fm-deploy/$v"; \
      "/opt/fm-deploy/$v/bin/pip" install --no-cache-dir --disable-pip-version-check --no-deps \
        -r "/tmp/req/requirements-$v.txt"; \
    done; \
    mkdir -p /opt/fm-deploy/bin; \
    for t in black flake8 mypy bandit detect-secrets pip-licenses pytest coverage; do \
      ln -s "/opt/fm-deploy/gates/bin/$t" "/opt/fm-deploy/bin/$t"; \
    done; \
    ln -s /opt/fm-deploy/pip-audit/bin/pip-audit /opt/fm-deploy/bin/pip-audit; \
    ln -s /opt/fm-deploy/safety/bin/safety /opt/fm-deploy/bin/safety

FROM ${TRIVY_IMAGE} AS trivy
FROM ${GITLEAKS_IMAGE} AS gitleaks

# ---- final -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
COPY --from=tools /opt/fm-deploy /opt/fm-deploy
COPY --from=trivy /usr/local/bin/trivy /usr/local/bin/trivy
COPY --from=gitleaks /usr/bin/gitleaks /usr/local/bin/gitleaks
COPY --from=build /out/fm-deploy /usr/local/bin/fm-deploy
# Tools before the system Python; colour forced because TTY detection fails in Actions containers.
ENV PATH=/opt/fm-deploy/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLICOLOR_FORCE=1
ENTRYPOINT ["/usr/local/bin/fm-deploy"]
