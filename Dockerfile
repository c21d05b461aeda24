# Builds the shipped Undercurrent executables on Debian with the Swift toolchain, librdkafka and libpq, and runs
# them as a non-root user. Used by docker-compose.yml (the command picks the executable).
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev zlib1g-dev libjemalloc-dev libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# The package names its test targets; their sources must exist for it to resolve (they are not built).
COPY Tests ./Tests
RUN for product in undercurrent billing-producer payments-producer engagement-producer marts-consumer; do \
        swift build -c release --product "$product" || exit 1; \
    done

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 libjemalloc2 zlib1g libpq5 libcurl4 libxml2 tzdata \
        ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/undercurrent --create-home --shell /usr/sbin/nologin undercurrent
COPY --from=build /usr/lib/swift/linux/*.so /usr/lib/swift/linux/
COPY --from=build /src/.build/release/undercurrent /src/.build/release/billing-producer \
     /src/.build/release/payments-producer /src/.build/release/engagement-producer \
     /src/.build/release/marts-consumer /usr/local/bin/
# The built-in defaults: the simulated business and the alert rules.
COPY config /etc/undercurrent
ENV LD_LIBRARY_PATH=/usr/lib/swift/linux
USER undercurrent
WORKDIR /var/lib/undercurrent
VOLUME ["/var/lib/undercurrent"]
# 8080: the dashboard (marts-consumer --serve, undercurrent dashboard); 9464: /metrics and /health (--metrics-listen).
EXPOSE 8080 9464
# Every long-running command is started with --metrics-listen 0.0.0.0:9464 (docker-compose.yml does).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:9464/health || exit 1
CMD ["undercurrent", "--help"]
