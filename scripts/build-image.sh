#!/usr/bin/env bash
# Builds the container image and tags it for a registry:
#
#   scripts/build-image.sh REGISTRY [TAG] [--push]
#
# makes REGISTRY/azgate:TAG (TAG defaults to the package version) and, with
# --push, pushes it. Point the charts at it with
#   --set image.repository=REGISTRY/azgate --set image.tag=TAG
#
# The engine is $CONTAINER_ENGINE (words split, so global flags may follow),
# else podman, else docker. Base images for mirrors: $BUILD_IMAGE and
# $RUNTIME_IMAGE (the Dockerfile's build arguments; NAME:TAG@sha256:... pins
# one by digest). More build flags: $CONTAINER_BUILD_FLAGS.
#
# After a build it removes what the build left untagged: the build stage
# (label org.azgate.stage=build, about 1 GB with podman, which keeps it) and
# the azgate image the new tag replaced. KEEP_BUILD_STAGE=1 keeps the build
# stages, as layer cache for the next build.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: scripts/build-image.sh REGISTRY [TAG] [--push]   (example: scripts/build-image.sh myregistry.azurecr.io 0.1.0 --push)" >&2; exit 2; }
registry=""; tag=""; push=0
for arg in "$@"; do
  case "$arg" in
    --push) push=1 ;;
    -h|--help) usage ;;
    -*) echo "unknown option $arg" >&2; usage ;;
    *) if [ -z "$registry" ]; then registry="$arg"; elif [ -z "$tag" ]; then tag="$arg"; else usage; fi ;;
  esac
done
[ -n "$registry" ] || usage
registry="${registry%/}"
[ -n "$tag" ] || tag="$(node -p 'require("./package.json").version')"
case "$tag" in *[!A-Za-z0-9_.-]*|"") echo "TAG must be letters, digits, '.', '_' or '-'" >&2; exit 2 ;; esac

if [ -n "${CONTAINER_ENGINE:-}" ]; then read -r -a engine <<< "$CONTAINER_ENGINE"
elif command -v podman >/dev/null 2>&1; then engine=(podman)
elif command -v docker >/dev/null 2>&1; then engine=(docker)
else echo "neither podman nor docker is installed; install one (apt-get install podman), or set CONTAINER_ENGINE" >&2; exit 1
fi

image="$registry/azgate:$tag"
args=()
[ -n "${BUILD_IMAGE:-}" ] && args+=(--build-arg "BUILD_IMAGE=$BUILD_IMAGE")
[ -n "${RUNTIME_IMAGE:-}" ] && args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")
read -r -a extra <<< "${CONTAINER_BUILD_FLAGS:-}"

echo "Building $image with ${engine[0]}"
"${engine[@]}" build ${extra[@]+"${extra[@]}"} ${args[@]+"${args[@]}"} -t "$image" .
# Untagged leftovers of this project only (both labels are the Dockerfile's): never another image.
"${engine[@]}" image prune -f --filter label=org.opencontainers.image.title=azgate >/dev/null
if [ "${KEEP_BUILD_STAGE:-0}" != 1 ]; then "${engine[@]}" image prune -f --filter label=org.azgate.stage=build >/dev/null; fi
if [ "$push" = 1 ]; then
  "${engine[@]}" push "$image"
  echo "Pushed $image"
fi
echo "Built $image. Charts: --set image.repository=$registry/azgate --set image.tag=$tag"
