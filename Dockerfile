# azgate container image: every mode in one static-ish binary (a Node single
# executable application) on a distroless base, running as non-root.
#   scripts/build-image.sh REGISTRY [TAG]     (or: docker build -t azgate .)
#   docker run -v azgate-data:/var/lib/azgate -p 3080:3080 -e AZGATE_PUBLIC_ADDR=azgate.example.com:3080 azgate
#   docker run -v agent-data:/var/lib/azgate azgate start --mode agent --proxy ... --token ... --ca-pin ...

# Base images are arguments so a registry mirror can stand in for them. Pin
# them by digest where your build can resolve one (NAME:TAG@sha256:...):
# these defaults are tags because this repository is built and tested offline,
# where no registry answers to resolve a digest; a digest written here unchecked
# would break every build the day the registry drops it.
ARG BUILD_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- build: bundle and make dist/azgate ----
FROM ${BUILD_IMAGE} AS build
# Lets a builder find this stage's leftovers: it is never tagged, and podman
# keeps it (about 1 GB) after every build; scripts/build-image.sh removes it.
LABEL org.azgate.stage=build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY bin ./bin
COPY cmd ./cmd
COPY src ./src
COPY scripts ./scripts
RUN npm run build:binary && /src/dist/azgate --version
# The runtime stage has no shell: make the data dir here, owned by the runtime user.
RUN mkdir -p /out/var/lib/azgate && chown 65532:65532 /out/var/lib/azgate

# ---- runtime: the binary and nothing to build with ----
# distroless/cc: glibc and libstdc++ (what a Node executable links), no shell, no package manager.
FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title=azgate
COPY --from=build /src/dist/azgate /usr/local/bin/azgate
COPY --from=build --chown=65532:65532 /out/var/lib/azgate /var/lib/azgate
USER 65532:65532
ENV AZGATE_DATA_DIR=/var/lib/azgate
VOLUME ["/var/lib/azgate"]
EXPOSE 3080 3000
# Whichever mode runs: the proxy or agent on /var/lib/azgate records its own
# readiness URL there at start (an agent's diagnostics port, or a loopback
# port of its own), and healthcheck asks that (Kubernetes uses the charts'
# probes instead).
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["/usr/local/bin/azgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/azgate"]
# The proxy. Links (invites, the web UI, notifications) name AZGATE_PUBLIC_ADDR
# (host:port users and agents reach); unset, they name the container's host
# name (docker run --hostname), never localhost.
CMD ["start", "--mode", "proxy", "--data-dir", "/var/lib/azgate", "--listen", "0.0.0.0:3080"]
