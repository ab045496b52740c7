# kausal: multi-stage build to a small, non-root image.
#
#   docker build -t kausal .
#   docker run --rm -v "$PWD/tests/fixtures:/data:ro" kausal replay /data/rollout-basic
#
# Build stage: the same toolchain as the project's machines. aws-lc-sys needs
# a C compiler (present in the rust image); no OpenSSL anywhere.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin kausal

# Final stage: distroless with glibc and CA certificates (for OTLP over TLS),
# running as the image's non-root user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/kausal /usr/local/bin/kausal
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/kausal"]
CMD ["--help"]
