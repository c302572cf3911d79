#!/bin/sh
# Install the Debian packages Ferry needs, only when something is missing.
# Called by the Makefile (`make deps`, a dependency of every main target).
set -e
PKGS="gcc make libjansson-dev libxxhash-dev libzstd-dev liblz4-dev libssl-dev openssl libcriterion-dev linux-libc-dev \
qemu-system-x86 python3 python3-matplotlib iproute2 libclang-rt-14-dev clang \
golang-go golang-github-digitalocean-go-qemu-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: need root to install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
