#!/bin/sh
# Install the Debian packages of the `deno task bench` peers that are not npm packages
# (Debian 12 bookworm, as root):
#   qemu  — qemu-system-x86: qemu-system-x86_64 -accel tcg (bench/peers/qemu.ts)
#   bochs — bochs 2.7 with the term display plugin (bochs-term: Debian's build has no
#           "nogui" library; bochs needs one bochs-gui plugin package) and vgabios (Bochs
#           loads a VGA ROM even though the bench ROM never calls it)
# The v86 peer is the npm package v86 (npm i -D v86@0.5.462); the kvm peer needs /dev/kvm.
# Each peer is skipped with its reason when its package is missing.
#
#   sh scripts/install-peers.sh
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends qemu-system-x86 bochs bochs-term vgabios
qemu-system-x86_64 --version | head -n 1
dpkg-query -W -f='bochs ${Version}\n' bochs
