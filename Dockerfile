# driftpilot: one binary and its runtime libraries on Debian 12.
#
#   docker build -t driftpilot:0.1.0 .
#   docker run --rm driftpilot:0.1.0 version
#
# Stage 1 builds with the -dev packages and CMake (portable: DP_NATIVE=OFF, no
# -march=native, so the image runs on any x86-64 or arm64 host); stage 2 holds
# only the shared libraries the binary links (openblas, gomp, jansson,
# microhttpd, sqlite3) and the binary, run as an unprivileged user with its
# state under /data.  See docs/packaging.md.

FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libopenblas-openmp-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DDP_NATIVE=OFF -DDP_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target driftpilot \
 && strip /build/driftpilot \
 && /build/driftpilot version

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libopenblas0-openmp libgomp1 libjansson4 libmicrohttpd12 libsqlite3-0 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin driftpilot \
 && mkdir -p /data /etc/driftpilot \
 && chown driftpilot:driftpilot /data
COPY --from=build /build/driftpilot /usr/local/bin/driftpilot
COPY configs/ /etc/driftpilot/
USER driftpilot
WORKDIR /data
VOLUME ["/data"]
# serve (aws, azure), router, controller /metrics
EXPOSE 8001 8002 8080 9102
ENTRYPOINT ["/usr/local/bin/driftpilot"]
CMD ["help"]
