# faultline: one image for the proxy, and (in docker-compose.yml) for the
# demo upstream and the demo client too.
#
#   docker build -t faultline .
#   docker run -v ./my.yaml:/etc/faultline/faultline.yaml:ro \
#     -e FAULTLINE_ADMIN_TOKEN=... -p 8080:8080 -p 9901:9901 faultline

# Both stages: Node's current LTS line, the major pinned so a rebuild never
# jumps one; slim Debian keeps glibc (no musl surprises) at a small size.

# ---- build: the TypeScript compiler and dev dependencies stay here ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs an install script to build (only esbuild, for tsx in
# tests, has one), so none runs.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, compiled JS and example configs ----
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The files stay root-owned: the process can read its code, not change it.
# 1000:1000 is the base image's `node` user; numeric, so Kubernetes'
# runAsNonRoot can verify it without reading /etc/passwd.
USER 1000:1000
# 8080: the proxy (listen.port); 9901: the admin API (admin.port).
EXPOSE 8080 9901
# Slim images have no curl; node's own fetch does the probe. /healthz says
# the process serves. 127.0.0.1 reaches the admin API both when admin.host
# is 0.0.0.0 (docker/faultline.yaml) and when it is the loopback default.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9901/healthz', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
# Mount the config here (docker-compose.yml mounts docker/faultline.yaml).
CMD ["run", "--config", "/etc/faultline/faultline.yaml"]
