# Builds every Undercurrent executable on Debian with the Swift toolchain and librdkafka.
FROM swift:6.3-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka-dev zlib1g-dev libjemalloc-dev libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends librdkafka1 libjemalloc2 zlib1g libpq5 libcurl4 libxml2 tzdata ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/lib/swift/linux/*.so /usr/lib/swift/linux/
COPY --from=build /src/.build/release/undercurrent /src/.build/release/billing-producer \
     /src/.build/release/payments-producer /src/.build/release/engagement-producer \
     /src/.build/release/marts-consumer /usr/local/bin/
COPY config /etc/undercurrent
ENV LD_LIBRARY_PATH=/usr/lib/swift/linux
WORKDIR /var/lib/undercurrent
