# The kube-baseline operator image: slim pinned base, non-root, no build tools in the final stage,
# the dependency set of pyproject.toml (installed from wheels built in the first stage).
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="kube-baseline" \
      org.opencontainers.image.source="https://github.com/kube-baseline/kube-baseline" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# 65532: the conventional "nonroot" UID; the Deployment's runAsUser matches it.
USER 65532:65532
ENTRYPOINT ["kube-baseline"]
CMD ["run", "--log-format=json"]
