#!/usr/bin/env bash
# Set-up for a fresh machine: Debian packages (apt-get, when root), npm packages, then the
# build (TypeScript and guest programs). Idempotent and incremental: run it before anything.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: the bare-metal cross toolchain for guests, QEMU as the reference machine,
# e2fsprogs for disk images, what the Linux guest's build needs (linux/README.md), passt for
# user-mode networking and iproute2 for the network tests' namespaces, bridges and TAP devices.
packages=(
  gcc-riscv64-unknown-elf binutils-riscv64-unknown-elf qemu-system-misc e2fsprogs make openssl etcd-server nftables
  gcc libc6-dev bison flex bc perl xz-utils rsync gcc-riscv64-linux-gnu binutils-riscv64-linux-gnu linux-source-6.1
  patch bzip2 gzip
  passt iproute2
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}"
    say "install them with: sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node.js 20 or later is needed (found $(node --version))"
  exit 1
fi

# npm packages, exactly as locked; again only when the lock file changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

npx --no-install tsc -p tsconfig.json
make -s -C guests
# The command line bundled, with V8's code cache, for a faster start (bin/understudy.js falls
# back to the modules).
node scripts/bundle.mjs || say "could not bundle the command line: it runs from dist/src (a slower start)"
# Host helpers: the TAP relay (--net tap).
make -s -C native
# The Linux guest: kernel, userland, initramfs; rebuilt only when their inputs change.
bash linux/build.sh
