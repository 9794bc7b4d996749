# envbot image: the bot plus a pinned, checksum-verified argo CLI, running as a non-root user.
#   docker build --build-arg ARGO_SHA256=<sha256 of argo-linux-amd64.gz for ARGO_VERSION> -t envbot .
# Take the checksum from the Argo Workflows release page for ARGO_VERSION and keep it under review:
# the build stops if it is missing or does not match.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY slackbot ./slackbot
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ARG ARGO_VERSION=v3.7.18
ARG ARGO_SHA256
RUN set -eu; \
    test -n "${ARGO_SHA256:-}" || { echo "set --build-arg ARGO_SHA256 for argo ${ARGO_VERSION}" >&2; exit 1; }; \
    apt-get update; apt-get install -y --no-install-recommends curl ca-certificates; \
    curl -fsSL -o /tmp/argo.gz \
      "https://github.com/argoproj/argo-workflows/releases/download/${ARGO_VERSION}/argo-linux-amd64.gz"; \
    echo "${ARGO_SHA256}  /tmp/argo.gz" | sha256sum -c -; \
    gunzip /tmp/argo.gz; install -m 0755 /tmp/argo /usr/local/bin/argo; rm -f /tmp/argo; \
    apt-get purge -y curl; apt-get autoremove -y; rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
RUN useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin envbot
USER 10001:10001
ENV HOME=/tmp PYTHONUNBUFFERED=1
EXPOSE 3000
ENTRYPOINT ["envbot"]
CMD ["serve"]
