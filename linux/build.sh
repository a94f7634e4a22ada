#!/usr/bin/env bash
# Builds understudy's Linux guest from Debian packages and the sources in linux/:
#
#   .cache/linux/Image              Linux 6.1 for RV32IMA (linux-source-6.1 + linux/kernel.config)
#   .cache/linux/initramfs.cpio     /init and /bin/sh from linux/userland (uncompressed newc cpio)
#   .cache/linux/understudy-sbi.bin the M-mode SBI firmware from linux/firmware
#
# Each output is rebuilt only when its inputs change: a fingerprint (SHA-256 of the input files,
# this script and the compiler's version) is stored beside it, and a run that finds every
# fingerprint current does nothing. The kernel source is extracted once into
# .cache/linux/src and built out of tree in .cache/linux/kbuild, so a configuration change
# recompiles only what it touches. Nothing here needs root, except installing missing
# build tools with apt-get, which the script does itself when it runs as root.
#
# Usage: linux/build.sh
# Environment:
#   LINUX_SOURCE_TARBALL   kernel source (default /usr/src/linux-source-6.1.tar.xz)
#   UNDERSTUDY_LINUX_CACHE output and work directory (default <repo>/.cache/linux)
#   JOBS                   parallel compile jobs (default: number of CPUs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${UNDERSTUDY_LINUX_CACHE:-$repo/.cache/linux}
tarball=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
cross=riscv64-linux-gnu-
# RV32IMA with the CSR and fence.i instructions; no C (compressed), no F/D.
guest_march=rv32ima_zicsr_zifencei
guest_mabi=ilp32

src=$cache/src
kbuild=$cache/kbuild
headers=$cache/headers
userland_build=$cache/userland

say() { echo "linux/build.sh: $*"; }
die() {
    echo "linux/build.sh: error: $*" >&2
    exit 1
}

# ---- Tools ------------------------------------------------------------------------------------
# command -> Debian package that provides it.
required_tools=(
    "make:make" "gcc:gcc" "bison:bison" "flex:flex" "bc:bc" "perl:perl" "tar:tar" "xz:xz-utils"
    "sha256sum:coreutils" "rsync:rsync" "${cross}gcc:gcc-riscv64-linux-gnu" "${cross}objcopy:binutils-riscv64-linux-gnu"
    "${cross}readelf:binutils-riscv64-linux-gnu"
)

install_packages() {
    local packages=("$@")
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing Debian package(s): ${packages[*]}; install them with: apt-get install ${packages[*]}"
    fi
    say "installing missing Debian package(s): ${packages[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null ||
            die "apt-get could not install: ${packages[*]}"
    fi
}

check_tools() {
    local missing=() entry tool package
    for entry in "${required_tools[@]}"; do
        tool=${entry%%:*}
        package=${entry#*:}
        command -v "$tool" >/dev/null || missing+=("$package")
    done
    # The kernel's host programs (Kconfig, dtc, fixdep) need the C library's headers.
    [ -e /usr/include/stdio.h ] || missing+=(libc6-dev)
    if [ ! -f "$tarball" ]; then
        [ -z "${LINUX_SOURCE_TARBALL:-}" ] || die "LINUX_SOURCE_TARBALL=$tarball does not exist"
        missing+=(linux-source-6.1)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        # De-duplicate (binutils appears twice) and install.
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        install_packages "${missing[@]}"
        for entry in "${required_tools[@]}"; do
            command -v "${entry%%:*}" >/dev/null || die "${entry%%:*} is still missing after installing ${entry#*:}"
        done
        [ -f "$tarball" ] || die "the kernel source $tarball is still missing (Debian package linux-source-6.1)"
    fi
}

# ---- Fingerprints -----------------------------------------------------------------------------
# fingerprint FILE... -> SHA-256 over the files' names and contents, this script and the
# cross-compiler's version.
fingerprint() {
    {
        local file
        for file in "$@"; do
            echo "== $file"
            cat "$file"
        done
        echo "== build.sh"
        cat "$here/build.sh"
        "${cross}gcc" --version | head -n 1
    } | sha256sum | cut -d' ' -f1
}

is_current() { # is_current OUTPUT FINGERPRINT
    [ -f "$1" ] && [ -f "$1.inputs" ] && [ "$(cat "$1.inputs")" = "$2" ]
}

publish() { # publish BUILT OUTPUT FINGERPRINT: move into place atomically, then record inputs
    mv -f "$1" "$2"
    echo "$3" >"$2.inputs"
}

# An RV32 ELF without the RVC flag: a guard against a toolchain or flag change sneaking
# compressed instructions into a guest whose CPU has no C extension.
check_rv32_elf() {
    local header
    header=$("${cross}readelf" -h "$1") || die "$1 is not an ELF file"
    grep -q 'Class:[[:space:]]*ELF32' <<<"$header" || die "$1 is not a 32-bit ELF file"
    if grep -q 'Flags:.*RVC' <<<"$header"; then die "$1 contains compressed (C) instructions"; fi
}

# ---- Kernel source ----------------------------------------------------------------------------
source_identity() {
    echo "$(basename "$tarball") $(stat -c '%s %Y' "$tarball")"
}

extract_source() {
    local identity
    identity=$(source_identity)
    if [ -f "$src/.understudy-source" ] && [ "$(cat "$src/.understudy-source")" = "$identity" ]; then
        return
    fi
    say "extracting $tarball into $src"
    rm -rf "$src" "$src.partial" "$kbuild" "$headers"
    mkdir -p "$src.partial"
    tar -xf "$tarball" -C "$src.partial" --strip-components=1 --no-same-owner ||
        die "could not extract $tarball"
    [ -f "$src.partial/Makefile" ] && [ -d "$src.partial/arch/riscv" ] ||
        die "$tarball does not look like a Linux source tree"
    echo "$identity" >"$src.partial/.understudy-source"
    mv "$src.partial" "$src"
}

kmake() {
    make -C "$src" O="$kbuild" ARCH=riscv CROSS_COMPILE="$cross" -j"$jobs" "$@"
}

# Every line of the fragment must hold in the final .config: Kconfig silently drops options
# whose dependencies are unmet or whose names are misspelt.
verify_config() {
    local line name value problems=0
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*)
            name=${line%%=*}
            if ! grep -qxF -- "$line" "$kbuild/.config"; then
                value=$(grep -m1 "^$name=" "$kbuild/.config" || echo "not set")
                echo "linux/build.sh: kernel.config asks for $line but the kernel configuration has: $value" >&2
                problems=$((problems + 1))
            fi
            ;;
        "# CONFIG_"*" is not set")
            name=${line#\# }
            name=${name%% *}
            if value=$(grep -m1 "^$name=" "$kbuild/.config"); then
                echo "linux/build.sh: kernel.config turns $name off but something selects it: $value" >&2
                problems=$((problems + 1))
            fi
            ;;
        esac
    done <"$here/kernel.config"
    [ $problems -eq 0 ] || die "$problems option(s) in linux/kernel.config did not take effect (see above)"
}

build_kernel() {
    local print inputs log
    inputs=$(fingerprint "$here/kernel.config"; source_identity)
    if is_current "$cache/Image" "$inputs" && [ -f "$kbuild/.config" ]; then
        say "kernel is up to date"
        return
    fi
    log=$cache/kernel-build.log
    say "configuring the kernel (allnoconfig + linux/kernel.config)"
    mkdir -p "$kbuild"
    kmake KCONFIG_ALLCONFIG="$here/kernel.config" allnoconfig >"$log" 2>&1 ||
        { tail -n 30 "$log" >&2; die "kernel configuration failed; full log: $log"; }
    verify_config
    say "building the kernel with $jobs jobs (log: $log)"
    local started=$SECONDS
    kmake Image >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "kernel build failed; full log: $log"; }
    check_rv32_elf "$kbuild/vmlinux"
    cp "$kbuild/.config" "$cache/kernel.config.resolved"
    cp "$kbuild/arch/riscv/boot/Image" "$cache/Image.partial"
    publish "$cache/Image.partial" "$cache/Image" "$inputs"
    say "kernel built in $((SECONDS - started)) s"
}

# UAPI headers (asm/unistd.h and friends) for the userland; they depend only on the source.
install_headers() {
    if [ -f "$headers/.understudy-source" ] && [ "$(cat "$headers/.understudy-source")" = "$(source_identity)" ]; then
        return
    fi
    say "installing the kernel's user-space headers into $headers"
    rm -rf "$headers"
    mkdir -p "$kbuild"
    kmake headers_install INSTALL_HDR_PATH="$headers" >"$cache/headers-install.log" 2>&1 ||
        { tail -n 20 "$cache/headers-install.log" >&2; die "headers_install failed"; }
    source_identity >"$headers/.understudy-source"
}

# ---- Firmware -------------------------------------------------------------------------------
build_firmware() {
    local inputs out=$cache/understudy-sbi
    inputs=$(fingerprint "$here"/firmware/entry.S "$here"/firmware/sbi.c "$here"/firmware/link.ld)
    if is_current "$out.bin" "$inputs"; then
        say "firmware is up to date"
        return
    fi
    say "building the SBI firmware"
    "${cross}gcc" -march="$guest_march" -mabi="$guest_mabi" -O2 -std=c11 -Wall -Wextra -Werror \
        -ffreestanding -fno-builtin -nostdlib -static -fno-pic -fno-pie -no-pie -mcmodel=medany -mno-relax \
        -fno-stack-protector -fno-asynchronous-unwind-tables -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
        -T "$here/firmware/link.ld" -o "$out.elf" "$here/firmware/entry.S" "$here/firmware/sbi.c" ||
        die "firmware build failed"
    check_rv32_elf "$out.elf"
    "${cross}objcopy" -O binary "$out.elf" "$out.bin.partial"
    publish "$out.bin.partial" "$out.bin" "$inputs"
}

# ---- Userland and initramfs -------------------------------------------------------------------
gen_init_cpio_tool() {
    local tool=$cache/tools/gen_init_cpio
    # A host program from the kernel tree, built on its own so it never waits on the kernel.
    if [ ! -x "$tool" ] || [ "$src/usr/gen_init_cpio.c" -nt "$tool" ]; then
        mkdir -p "$cache/tools"
        gcc -O2 -o "$tool" "$src/usr/gen_init_cpio.c" || die "could not build usr/gen_init_cpio"
    fi
    echo "$tool"
}

build_userland() {
    local inputs program
    inputs=$(fingerprint "$here"/userland/*.c "$here"/userland/*.h "$here/initramfs.list"; cat "$headers/.understudy-source")
    if is_current "$cache/initramfs.cpio" "$inputs"; then
        say "userland and initramfs are up to date"
        return
    fi
    say "building the userland and the initramfs"
    mkdir -p "$userland_build"
    for program in init sh; do
        "${cross}gcc" -march="$guest_march" -mabi="$guest_mabi" -Os -std=gnu11 -Wall -Wextra -Werror \
            -static -nostdlib -fno-pic -fno-pie -no-pie -ffreestanding -fno-stack-protector \
            -fno-asynchronous-unwind-tables -fno-ident -s -Wl,--build-id=none \
            -I "$here/userland" -I "$src/tools/include/nolibc" -I "$headers/include" \
            -o "$userland_build/$program" "$here/userland/$program.c" || die "building userland/$program.c failed"
        check_rv32_elf "$userland_build/$program"
    done
    local tool
    tool=$(gen_init_cpio_tool)
    # -t 0: every entry dated 1970, so the archive depends only on its contents.
    USERLAND=$userland_build "$tool" -t 0 "$here/initramfs.list" >"$cache/initramfs.cpio.partial" ||
        die "gen_init_cpio failed on linux/initramfs.list"
    publish "$cache/initramfs.cpio.partial" "$cache/initramfs.cpio" "$inputs"
}

# ---- Main -----------------------------------------------------------------------------------------
main() {
    check_tools
    mkdir -p "$cache"
    # One build at a time per cache directory.
    if command -v flock >/dev/null; then
        exec 9>"$cache/.lock"
        flock 9
    fi
    extract_source
    build_kernel
    install_headers
    build_firmware
    build_userland
    local file
    for file in Image initramfs.cpio understudy-sbi.bin; do
        say "$(printf '%-20s %s (%s bytes)' "$file" "$cache/$file" "$(stat -c %s "$cache/$file")")"
    done
}

main "$@"
