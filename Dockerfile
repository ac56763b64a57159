# Multi-stage build: a Debian 12 build stage with the -dev packages, and a slim runtime stage
# with only the shared libraries the binary links, running as a non-root user.
FROM debian:12 AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libboost-system1.81-dev \
      libssl-dev libyaml-cpp-dev libhiredis-dev prometheus-cpp-dev libspdlog-dev libfmt-dev \
      libre2-dev libsqlite3-dev libyaml-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPORTCULLIS_TESTS=OFF \
      -DPORTCULLIS_BENCHMARKS=OFF \
    && cmake --build /build --target portcullis \
    && strip /build/portcullis

# No curl (nor its dozen libraries) in the image: the health check speaks HTTP with bash.
FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libyaml-cpp0.7 libspdlog1.10 libfmt9 libre2-9 libhiredis0.14 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libboost-json1.81.0 libboost-url1.81.0 \
      libboost-system1.81.0 libsqlite3-0 libyaml-0-2 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 999 --no-create-home --shell /usr/sbin/nologin portcullis \
    && install -d -o portcullis -g portcullis -m 0700 /var/lib/portcullis
COPY --from=build /build/portcullis /usr/bin/portcullis
COPY conf/portcullis.yaml /etc/portcullis/portcullis.yaml
# Revocations and bans are kept in the state volume, so they outlive the container.
RUN sed -i 's#path: state/portcullis.db#path: /var/lib/portcullis/portcullis.db#' \
      /etc/portcullis/portcullis.yaml \
    && grep -q 'path: /var/lib/portcullis/portcullis.db' /etc/portcullis/portcullis.yaml
VOLUME /var/lib/portcullis
USER portcullis
EXPOSE 8443 8080
# GET /healthz on the admin listener (server.admin.address; 127.0.0.1:9901 by default).
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/bin/portcullis"]
CMD ["-c", "/etc/portcullis/portcullis.yaml"]
