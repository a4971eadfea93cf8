#!/usr/bin/env bash
# Make the local base image debian:bookworm-slim without a registry:
# debootstrap a minimal Debian 12 root filesystem and import it. Idempotent.
set -euo pipefail
IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
rootfs=$(mktemp -d /tmp/recsys-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrapping bookworm into $rootfs (about a minute)"
debootstrap --variant=minbase bookworm "$rootfs" >/tmp/recsys-debootstrap.log 2>&1 || {
  tail -20 /tmp/recsys-debootstrap.log >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "imported $IMAGE"
