# Build stage: compile the release binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p resonance-api --bin resonance

# Runtime stage: the binary, espeak-ng for speech synthesis, CA certificates for Clerk/S3.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/resonance --create-home resonance
COPY --from=build /src/target/release/resonance /usr/local/bin/resonance
USER resonance
WORKDIR /var/lib/resonance
ENV RESONANCE_BIND=0.0.0.0:8080 \
    RESONANCE_DATA_DIR=/var/lib/resonance/data
EXPOSE 8080
ENTRYPOINT ["resonance"]
CMD ["serve"]
