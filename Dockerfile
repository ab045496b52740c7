# kausal: multi-stage build to a small, non-root image.
#
#   docker build -t kausal:dev .
#   docker run --rm -v "$PWD/tests/fixtures:/data:ro" kausal:dev replay /data/rollout-basic
#   docker run --rm -p 8443:8443 -p 9090:9090 -v "$PWD/certs:/certs:ro" kausal:dev serve \
#     --tls-cert /certs/server.crt --tls-key /certs/server.key --client-ca /certs/ca.crt
#
# Ports: 8443 is the HTTPS audit webhook (KAUSAL_LISTEN), 9090 serves
# /healthz, /readyz and /metrics over plain HTTP (KAUSAL_OPS_LISTEN).
#
# Build stage: the same toolchain as the project's machines. aws-lc-sys needs
# a C compiler (present in the rust image); no OpenSSL anywhere.
# Cargo.toml declares bench targets, and cargo refuses a manifest whose
# targets are missing, so benches/ is copied too (it is not built). What the
# context holds is limited by .dockerignore to exactly these files, and
# .ci/run builds from a copy of exactly them, as this stage does.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin kausal

# Final stage: distroless with glibc and CA certificates (for OTLP over TLS),
# running as the image's non-root user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kausal /usr/local/bin/kausal
USER nonroot:nonroot
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/kausal"]
CMD ["serve"]
