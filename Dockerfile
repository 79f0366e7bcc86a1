# Runs the azgate proxy from source on Node, as a non-root user.
# (The single-binary image, built from dist/azgate, replaces this with issue 6.)
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm install --no-save --no-audit --no-fund tsx
COPY cmd ./cmd
COPY src ./src
COPY bin ./bin

FROM node:20-bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/azgate azgate && mkdir -p /var/lib/azgate && chown azgate /var/lib/azgate
WORKDIR /app
COPY --from=build /app /app
USER 10001
VOLUME /var/lib/azgate
EXPOSE 3080
HEALTHCHECK --interval=30s --timeout=5s CMD node -e "require('https').get({host:'127.0.0.1',port:3080,path:'/healthz',rejectUnauthorized:false},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
ENTRYPOINT ["node", "/app/bin/azgate.mjs"]
CMD ["start", "--mode", "proxy", "--data-dir", "/var/lib/azgate", "--listen", "0.0.0.0:3080"]
