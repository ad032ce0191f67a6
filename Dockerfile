# depthq image: the CLI, the worker and the simulator run from the same image (`depthq <command>`).
FROM node:20-bookworm-slim

ENV NODE_ENV=production \
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true

WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY workers ./workers
COPY scripts ./scripts
COPY tsconfig.json ./

USER node
ENTRYPOINT ["node", "bin/depthq.js"]
CMD ["--help"]
