# azgate container image: every mode in one static-ish binary (a Node single
# executable application) on a distroless base, running as non-root.
#   docker build -t azgate .
#   docker run -v azgate-data:/var/lib/azgate -p 3080:3080 azgate start --mode proxy --config /etc/azgate/azgate.yaml

# Base images are arguments so a registry mirror can stand in for them.
ARG BUILD_IMAGE=node:20-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# ---- build: bundle and make dist/azgate ----
FROM ${BUILD_IMAGE} AS build
# Lets a builder find (and prune) this stage's leftovers: it is never tagged.
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
# The proxy's readiness on its own port; for an agent, pass --url http://127.0.0.1:3000/readyz
# (Kubernetes uses the probes in the Helm charts instead).
HEALTHCHECK --interval=30s --timeout=6s --start-period=20s --retries=3 CMD ["/usr/local/bin/azgate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/azgate"]
CMD ["start", "--mode", "proxy", "--data-dir", "/var/lib/azgate", "--listen", "0.0.0.0:3080"]
