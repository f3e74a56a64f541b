# One image with every MANTIS binary: `mantis` (CLI, embedded mode) and `mantis-<service>`
# (cluster mode, one per pod/container). Used by docker-compose.yml and the Helm chart.
#
#   docker build -t mantis:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
      -p mantis -p mantis-ingestion -p mantis-preprocessing -p mantis-features \
      -p mantis-anomaly -p mantis-rul -p mantis-orchestrator -p mantis-gateway \
 && mkdir /out \
 && for b in mantis mantis-ingestion mantis-preprocessing mantis-features mantis-anomaly \
             mantis-rul mantis-orchestrator mantis-gateway; do cp "target/release/$b" /out/; done

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
COPY rules /etc/mantis/rules
ENV MANTIS_INFRA__RULES_DIR=/etc/mantis/rules \
    MANTIS_INFRA__DATA_DIR=/var/lib/mantis \
    MANTIS_LOG_FORMAT=json
RUN mkdir -p /var/lib/mantis && chown 65532:65532 /var/lib/mantis
USER 65532:65532
WORKDIR /var/lib/mantis
# Embedded mode by default (`docker run -p 8000:8000 mantis:dev demo`); cluster deployments
# run `mantis-<service>` instead.
ENTRYPOINT ["mantis"]
CMD ["demo"]
