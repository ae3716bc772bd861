# The kube-baseline operator image: non-root, read-only friendly, no build tools in the final stage.
# `make image` builds it (hack/image). BASE is any Debian-based image with python3 (>= 3.11) and its
# venv module: the upstream slim Python image by default, or, where no registry can be reached, one
# built from Debian packages by hack/image-base. Both stages use the same BASE, so the virtualenv's
# interpreter link points at the same python3 in the final image.
ARG BASE=docker.io/library/python:3.11.14-slim-bookworm

FROM ${BASE} AS build
# The package index pip uses (hack/image passes the machine's own). An optional CA bundle for it
# comes in as the build secret `pip-cert`, so it never lands in a layer.
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_TRUSTED_HOST=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/kube-baseline
WORKDIR /src
# Dependencies first (wheels only: no compiler anywhere), so this layer is reused until
# pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi && \
    python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
      > /tmp/requirements.txt && \
    /opt/kube-baseline/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements.txt
COPY operator ./operator
# Then the project itself; pip and setuptools leave the virtualenv (nothing installs at run time).
RUN --mount=type=secret,id=pip-cert \
    if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi && \
    /opt/kube-baseline/bin/pip install --no-cache-dir --no-deps . && \
    /opt/kube-baseline/bin/pip uninstall --yes pip setuptools && \
    /opt/kube-baseline/bin/kube-baseline --version

FROM ${BASE}
LABEL org.opencontainers.image.title="kube-baseline" \
      org.opencontainers.image.source="https://github.com/kube-baseline/kube-baseline" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/kube-baseline/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/kube-baseline /opt/kube-baseline
# 65532: the conventional "nonroot" UID; the Deployment's runAsUser matches it.
USER 65532:65532
ENTRYPOINT ["kube-baseline"]
CMD ["run", "--log-format=json"]
