#!/usr/bin/env bash
# Builds understudy's Linux guest from Debian packages and the sources in linux/:
#
#   .cache/linux/Image              Linux 6.1 for RV32IMAC (linux-source-6.1 + linux/kernel.config)
#   .cache/linux/initramfs.cpio     the userland (uncompressed newc cpio): BusyBox on musl, our
#                                   /init and benchmarks, the files in linux/rootfs
#   .cache/linux/understudy-sbi.bin the M-mode SBI firmware from linux/firmware
#   .cache/linux/e2fsck             e2fsck for the guest (in the initramfs as /sbin/e2fsck)
#
# With --defconfig it builds only the standard kernel instead, into its own directory:
#
#   .cache/linux-defconfig/Image    Linux 6.1 from the kernel's own rv32_defconfig plus
#                                   linux/defconfig-kernel.config (what understudy's board
#                                   needs); Image only, no modules. Opt-in (665 CPU-seconds,
#                                   18 minutes on a busy two-core machine), so the set-up and CI
#                                   do not build it (linux/README.md, "The standard kernel").
#
# The userland's sources are Debian's own source packages from trixie (musl 1.2.5, busybox
# 1.37, e2fsprogs 1.47), fetched once with apt-get source through a private sources list and
# state directory under .cache/linux/apt: the machine's apt configuration is read (for its
# Debian mirror) and never changed.
#
# Each output is rebuilt only when its inputs change: a fingerprint (SHA-256 of the input files,
# this script and the compiler's version) is stored beside it, and a run that finds every
# fingerprint current does nothing. The kernel source is extracted once into
# .cache/linux/src and built out of tree in .cache/linux/kbuild, so a configuration change
# recompiles only what it touches. Nothing here needs root, except installing missing
# build tools with apt-get, which the script does itself when it runs as root.
#
# Usage: linux/build.sh [--defconfig]
# Environment:
#   LINUX_SOURCE_TARBALL   kernel source (default /usr/src/linux-source-6.1.tar.xz)
#   UNDERSTUDY_LINUX_CACHE output and work directory (default <repo>/.cache/linux)
#   UNDERSTUDY_LINUX_DEFCONFIG_CACHE  the standard kernel's (default <repo>/.cache/linux-defconfig)
#   JOBS                   parallel compile jobs (default: number of CPUs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
cache=${UNDERSTUDY_LINUX_CACHE:-$repo/.cache/linux}
defconfig_cache=${UNDERSTUDY_LINUX_DEFCONFIG_CACHE:-$repo/.cache/linux-defconfig}
tarball=${LINUX_SOURCE_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
cross=riscv64-linux-gnu-
# The userland: RV32IMA with the CSR and fence.i instructions; no C (compressed), no F/D (soft-float).
guest_march=rv32ima_zicsr_zifencei
guest_mabi=ilp32

src=$cache/src
kbuild=$cache/kbuild
headers=$cache/headers
userland_build=$cache/userland
sources=$cache/sources
musl=$cache/musl
# The guest's C compiler: the cross compiler driven onto musl by a specs file (build_musl).
guest_cc=$musl/bin/rv32-musl-gcc
# The 32-bit libgcc (64-bit division, soft-float helpers) comes from the bare-metal toolchain's
# rv32im/ilp32 multilib: Debian's riscv64-linux-gnu toolchain has no rv32 libgcc, and that
# multilib is built without compressed instructions (rv32ima has no multilib of its own;
# libgcc uses no atomics).
guest_libgcc_multilib=rv32im/ilp32
# Debian's source packages, by upstream version: any Debian revision of these will do, and a
# different upstream version stops the build (the configuration files are written for these).
debian_release=trixie
musl_version=1.2.5
busybox_version=1.37.0
e2fsprogs_version=1.47.2

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
    "${cross}readelf:binutils-riscv64-linux-gnu" "${cross}objdump:binutils-riscv64-linux-gnu"
    "riscv64-unknown-elf-gcc:gcc-riscv64-unknown-elf" "patch:patch" "bzip2:bzip2" "gzip:gzip" "apt-get:apt"
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

# An RV32 ELF, and (unless the second argument is "compressed-ok") without the RVC flag: the
# kernel is built with C (understudy's CPU has it, as QEMU's does), the userland is kept to
# RV32IMA, so that it also runs on a CPU without C; this guards against a toolchain or flag
# change sneaking compressed instructions into it.
check_rv32_elf() {
    local header
    header=$("${cross}readelf" -h "$1") || die "$1 is not an ELF file"
    grep -q 'Class:[[:space:]]*ELF32' <<<"$header" || die "$1 is not a 32-bit ELF file"
    if [ "${2:-}" != compressed-ok ] && grep -q 'Flags:.*RVC' <<<"$header"; then die "$1 contains compressed (C) instructions"; fi
}

# The ELF flag says what the linker was told, not what the code is: a library object built
# with C, or hand-written assembly, can still hide 16-bit instructions. This disassembles
# every executable section and fails on any instruction whose encoding is 2 bytes long.
check_no_compressed() {
    local short
    "${cross}objdump" -d "$1" >"$1.disassembly" || die "objdump could not disassemble $1"
    short=$(awk -F'\t' '/^ *[0-9a-f]+:\t/ { code = $2; gsub(/ /, "", code); if (length(code) == 4 && found++ < 5) print }' "$1.disassembly")
    rm -f "$1.disassembly"
    [ -z "$short" ] || die "$1 contains compressed (16-bit) instructions, e.g.:
$short"
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

kmake_in() { # kmake_in BUILD_DIRECTORY TARGET...: the kernel's make, out of tree
    local out=$1
    shift
    make -C "$src" O="$out" ARCH=riscv CROSS_COMPILE="$cross" -j"$jobs" "$@"
}

kmake() { kmake_in "$kbuild" "$@"; }

# Sets every line of a configuration fragment in a .config, replacing the option's line there
# (its value or "is not set"); the caller runs oldconfig or olddefconfig afterwards.
apply_fragment() { # apply_fragment FRAGMENT CONFIG
    local line name
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*) name=${line%%=*} ;;
        "# CONFIG_"*" is not set") name=${line#\# } && name=${name%% *} ;;
        *) continue ;;
        esac
        sed -i -e "/^$name=/d" -e "/^# $name is not set\$/d" "$2"
        echo "$line" >>"$2"
    done <"$1"
}

# Every line of a configuration fragment must hold in the final .config: Kconfig silently
# drops options whose dependencies are unmet or whose names are misspelt.
verify_fragment() { # verify_fragment FRAGMENT CONFIG
    local fragment=$1 config=$2 line name value problems=0
    while IFS= read -r line; do
        case $line in
        CONFIG_*=*)
            name=${line%%=*}
            if ! grep -qxF -- "$line" "$config"; then
                value=$(grep -m1 "^$name=" "$config" || echo "not set")
                echo "linux/build.sh: $(basename "$fragment") asks for $line but the configuration has: $value" >&2
                problems=$((problems + 1))
            fi
            ;;
        "# CONFIG_"*" is not set")
            name=${line#\# }
            name=${name%% *}
            if value=$(grep -m1 "^$name=" "$config"); then
                echo "linux/build.sh: $(basename "$fragment") turns $name off but something selects it: $value" >&2
                problems=$((problems + 1))
            fi
            ;;
        esac
    done <"$fragment"
    [ $problems -eq 0 ] || die "$problems option(s) in linux/$(basename "$fragment") did not take effect (see above)"
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
    verify_fragment "$here/kernel.config" "$kbuild/.config"
    say "building the kernel with $jobs jobs (log: $log)"
    local started=$SECONDS
    kmake Image >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "kernel build failed; full log: $log"; }
    check_rv32_elf "$kbuild/vmlinux" compressed-ok
    cp "$kbuild/.config" "$cache/kernel.config.resolved"
    cp "$kbuild/arch/riscv/boot/Image" "$cache/Image.partial"
    publish "$cache/Image.partial" "$cache/Image" "$inputs"
    say "kernel built in $((SECONDS - started)) s"
}

# The standard kernel (--defconfig): the kernel's own rv32_defconfig, then every line of
# linux/defconfig-kernel.config set on top and olddefconfig, each line checked to have
# survived; built out of tree in $defconfig_cache/kbuild. `make Image` builds vmlinux and the
# Image, not the modules rv32_defconfig asks for (=m): the initramfs holds none.
build_defconfig_kernel() {
    local fragment=$here/defconfig-kernel.config build=$defconfig_cache/kbuild log=$defconfig_cache/kernel-build.log inputs
    inputs=$(fingerprint "$fragment"; source_identity)
    if is_current "$defconfig_cache/Image" "$inputs" && [ -f "$build/.config" ]; then
        say "the defconfig kernel is up to date"
        return
    fi
    # Objects compiled from another source tree must not be mixed into this one.
    if [ -f "$build/.understudy-source" ] && [ "$(cat "$build/.understudy-source")" != "$(source_identity)" ]; then
        rm -rf "$build"
    fi
    mkdir -p "$build"
    source_identity >"$build/.understudy-source"
    say "configuring the defconfig kernel (rv32_defconfig + linux/defconfig-kernel.config)"
    kmake_in "$build" rv32_defconfig >"$log" 2>&1 || { tail -n 30 "$log" >&2; die "rv32_defconfig failed; full log: $log"; }
    cp "$build/.config" "$defconfig_cache/rv32_defconfig.resolved"
    apply_fragment "$fragment" "$build/.config"
    kmake_in "$build" olddefconfig >>"$log" 2>&1 || { tail -n 30 "$log" >&2; die "olddefconfig failed; full log: $log"; }
    verify_fragment "$fragment" "$build/.config"
    say "building the defconfig kernel with $jobs jobs: Image only, no modules (log: $log)"
    local started=$SECONDS
    kmake_in "$build" Image >>"$log" 2>&1 || { tail -n 40 "$log" >&2; die "defconfig kernel build failed; full log: $log"; }
    check_rv32_elf "$build/vmlinux" compressed-ok
    cp "$build/.config" "$defconfig_cache/kernel.config.resolved"
    cp "$build/arch/riscv/boot/Image" "$defconfig_cache/Image.partial"
    publish "$defconfig_cache/Image.partial" "$defconfig_cache/Image" "$inputs"
    say "defconfig kernel built in $((SECONDS - started)) s"
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

# ---- Debian source packages -------------------------------------------------------------------
# apt-get with a private sources list, state and archive directory: a deb-src line for
# $debian_release on the Debian mirror this machine's apt already uses. Nothing outside
# $cache/apt is written.
apt_private() {
    local dir=$cache/apt
    apt-get -q -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$dir/lists" -o Dir::Cache::Archives="$dir/archives" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User="$(id -un)" "$@"
}

apt_private_update() {
    [ -z "${apt_updated:-}" ] || return 0
    local dir=$cache/apt mirror
    # The first Debian (not security, not updates) archive in the machine's apt sources.
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(LABEL) $(CODENAME)' 2>/dev/null |
        awk '$2 == "Debian" && $3 !~ /-/ { print $1; exit }')
    [ -n "$mirror" ] || die "found no Debian archive in this machine's apt sources (apt-get indextargets)"
    mkdir -p "$dir/lists/partial" "$dir/archives/partial"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $debian_release main" >"$dir/sources.list"
    say "fetching the $debian_release source package index"
    apt_private update >"$dir/update.log" 2>&1 || { tail -n 5 "$dir/update.log" >&2; die "apt-get update (private, $debian_release sources) failed"; }
    apt_updated=1
}

# dsc_file DSC PATTERN -> the name of the file listed in the .dsc that matches PATTERN
dsc_file() {
    sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$1" | awk -v pattern="$2" '$3 ~ pattern { print $3; exit }'
}

# Checks a downloaded file against the SHA-256 in the .dsc (which apt checked against the
# signed index).
dsc_verify() { # dsc_verify DSC FILE
    local expected actual
    expected=$(sed -n '/^Checksums-Sha256:/,/^[^ ]/p' "$1" | awk -v name="$(basename "$2")" '$3 == name { print $1 }')
    actual=$(sha256sum "$2" | cut -d' ' -f1)
    [ -n "$expected" ] && [ "$expected" = "$actual" ] || die "$2 does not match its checksum in $1"
}

# fetch_source PACKAGE UPSTREAM_VERSION: unpacks Debian's source package, with Debian's patches
# applied, into $sources/PACKAGE (once; later runs need no network).
fetch_source() {
    local package=$1 version=$2 dir=$sources/$1 download=$sources/download dsc orig debian_tar patch
    if [ -f "$dir/.understudy-source" ]; then
        grep -q "^$package $version-" "$dir/.understudy-source" ||
            die "$dir holds $(cat "$dir/.understudy-source"), not $package $version: remove it to fetch again"
        return
    fi
    apt_private_update
    rm -rf "$download" "$dir" "$dir.partial"
    mkdir -p "$download"
    say "fetching Debian's source package $package ($debian_release)"
    # --download-only: apt's own unpacking needs dpkg-dev and every file the .dsc names,
    # and the mirror may lack an upstream signature (.asc); the tarballs are all we need.
    (cd "$download" && apt_private source --download-only "$package" >"$download/fetch.log" 2>&1) || true
    dsc=$(ls "$download"/"${package}"_*.dsc 2>/dev/null | head -n 1)
    [ -n "$dsc" ] || { tail -n 5 "$download/fetch.log" >&2; die "apt-get source $package found nothing"; }
    orig=$(dsc_file "$dsc" '\.orig\.tar\.[a-z0-9]+$')
    debian_tar=$(dsc_file "$dsc" '\.debian\.tar\.[a-z0-9]+$')
    [ -n "$orig" ] && [ -n "$debian_tar" ] || die "$dsc is not a 3.0 (quilt) source package"
    case $orig in "${package}_${version}.orig."*) ;; *) die "Debian's $package is $orig, not upstream $version" ;; esac
    for file in "$orig" "$debian_tar"; do
        [ -f "$download/$file" ] || { tail -n 5 "$download/fetch.log" >&2; die "apt-get source $package did not fetch $file"; }
        dsc_verify "$dsc" "$download/$file"
    done
    mkdir -p "$dir.partial"
    tar -xf "$download/$orig" -C "$dir.partial" --strip-components=1 --no-same-owner || die "could not extract $orig"
    tar -xf "$download/$debian_tar" -C "$dir.partial" --no-same-owner || die "could not extract $debian_tar"
    if [ -f "$dir.partial/debian/patches/series" ]; then
        while read -r patch _; do
            case $patch in '' | '#'*) continue ;; esac
            patch -d "$dir.partial" -p1 -s -N <"$dir.partial/debian/patches/$patch" >/dev/null ||
                die "Debian's patch $patch does not apply to $package"
        done <"$dir.partial/debian/patches/series"
    fi
    basename "$dsc" .dsc | sed 's/_/ /' >"$dir.partial/.understudy-source"
    mv "$dir.partial" "$dir"
    rm -rf "$download"
}

source_version() { cat "$sources/$1/.understudy-source"; }

# ---- musl: the C library ------------------------------------------------------------------------
# Static only, for rv32ima/ilp32, installed into $musl with a compiler wrapper
# ($guest_cc) that puts musl's headers, start files and libc.a in place of glibc's and the
# 32-bit libgcc in place of the 64-bit one.
build_musl() {
    local inputs libgcc build=$cache/musl-build
    libgcc=$(riscv64-unknown-elf-gcc -print-file-name="$guest_libgcc_multilib/libgcc.a" 2>/dev/null)
    case $libgcc in /*) ;; *) libgcc=$(dirname "$(riscv64-unknown-elf-gcc -print-libgcc-file-name)")/$guest_libgcc_multilib/libgcc.a ;; esac
    [ -f "$libgcc" ] || die "no rv32 libgcc at $libgcc (Debian package gcc-riscv64-unknown-elf)"
    inputs=$(fingerprint; source_version musl; sha256sum "$libgcc"; cat "$headers/.understudy-source")
    if is_current "$musl/lib/libc.a" "$inputs" && [ -x "$guest_cc" ]; then
        say "musl is up to date"
        return
    fi
    say "building $(source_version musl) for rv32ima/ilp32"
    local started=$SECONDS
    rm -rf "$build" "$musl"
    mkdir -p "$build"
    (cd "$build" && "$sources/musl/configure" --target=riscv32-linux-musl --prefix="$musl" \
        --disable-shared CROSS_COMPILE="$cross" CC="${cross}gcc -march=$guest_march -mabi=$guest_mabi" \
        CFLAGS="-O2" LIBCC="$libgcc") >"$cache/musl-build.log" 2>&1 ||
        { tail -n 20 "$cache/musl-build.log" >&2; die "musl configure failed"; }
    make -C "$build" -j"$jobs" >>"$cache/musl-build.log" 2>&1 && make -C "$build" install >>"$cache/musl-build.log" 2>&1 ||
        { tail -n 30 "$cache/musl-build.log" >&2; die "musl build failed; full log: $cache/musl-build.log"; }
    # The specs file, after musl's own musl-gcc.specs: its headers before the compiler's, its
    # crt files and libc.a instead of the host's, static linking, and the rv32 libgcc.
    cat >"$musl/lib/rv32-musl.specs" <<SPECS
%rename cpp_options old_cpp_options
%rename link old_link

*cpp_options:
-nostdinc -isystem $musl/include -isystem $headers/include -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem $musl/include -isystem $headers/include -isystem include%s

*link_libgcc:
-L$musl/lib

*libgcc:
$libgcc

*startfile:
$musl/lib/crt1.o $musl/lib/crti.o

*endfile:
$musl/lib/crtn.o

*link:
%(old_link) -nostdlib
SPECS
    mkdir -p "$musl/bin"
    cat >"$guest_cc" <<WRAPPER
#!/bin/sh
# C compiler for understudy's Linux guest: rv32ima/ilp32, static, musl (made by linux/build.sh).
exec ${cross}gcc -march=$guest_march -mabi=$guest_mabi -static -specs=$musl/lib/rv32-musl.specs "\$@"
WRAPPER
    chmod +x "$guest_cc"
    check_musl
    echo "$inputs" >"$musl/lib/libc.a.inputs"
    say "musl built in $((SECONDS - started)) s"
}

# What the userland relies on, checked in the library itself: the rv32 system calls are all
# the 64-bit-time ones (there is no other kind on rv32), atomics are LR/SC and AMO
# instructions (rv32ima has A), and no instruction anywhere is compressed.
check_musl() {
    local probe=$cache/musl-probe
    cat >"$probe.c" <<'PROBE'
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <sys/stat.h>
_Static_assert(sizeof(time_t) == 8, "time_t is 64-bit");
_Static_assert(sizeof(off_t) == 8, "off_t is 64-bit");
int main(void) {
    struct timespec now;
    struct stat info;
    atomic_int counter = 0;
    atomic_fetch_add(&counter, 1);
    clock_gettime(CLOCK_REALTIME, &now);
    stat("/", &info);
    printf("%lld %d\n", (long long)now.tv_sec, atomic_load(&counter));
    return 0;
}
PROBE
    "$guest_cc" -O2 -Wall -Werror -o "$probe" "$probe.c" || die "the musl compiler wrapper cannot build a program"
    check_rv32_elf "$probe"
    check_no_compressed "$probe"
    "${cross}objdump" -d "$musl/lib/libc.a" >"$probe.libc.txt" 2>/dev/null || die "objdump could not read libc.a"
    grep -qE '\slr\.w' "$probe.libc.txt" && grep -qE '\ssc\.w' "$probe.libc.txt" ||
        die "musl's libc.a has no LR/SC instructions: were atomics built for rv32ima?"
    "${cross}objdump" -d "$probe" >"$probe.txt" || die "objdump could not read $probe"
    grep -qE '\samoadd\.w' "$probe.txt" || die "C11 atomics did not compile to AMO instructions"
    # The rv32 kernel has only the 64-bit-time calls; musl must know them by their own names
    # and have none of the 32-bit ones its code would otherwise prefer (nanosleep(2) is listed
    # but unused: musl sleeps through clock_nanosleep).
    local table=$musl/include/bits/syscall.h
    grep -q '^#define SYS_clock_gettime64\b' "$table" && grep -q '^#define SYS_clock_nanosleep_time64\b' "$table" &&
        grep -q '^#define SYS_futex __NR_futex_time64' "$table" || die "musl's rv32 system call table lacks the time64 calls"
    if grep -qE '^#define SYS_(clock_gettime|clock_nanosleep|gettimeofday|fstat|newfstatat|ppoll|pselect6|wait4)\b' "$table"; then
        die "musl's rv32 system call table has a 32-bit-time call"
    fi
    awk -F'\t' '/^ *[0-9a-f]+:\t/ { code = $2; gsub(/ /, "", code); if (length(code) == 4) { print; exit 1 } }' "$probe.libc.txt" ||
        die "musl's libc.a contains compressed instructions"
    rm -f "$probe" "$probe.c" "$probe.txt" "$probe.libc.txt"
}

# ---- e2fsck ----------------------------------------------------------------------------------------
# e2fsprogs' e2fsck alone (with the libraries it needs), static against our musl, for checking
# the data disk from inside the guest. musl 1.2.4 dropped the lseek64 symbol: with
# _LARGEFILE64_SOURCE its headers map lseek64 to lseek, and configure is told the function
# exists (its link test would otherwise fall back to a raw _llseek system call rv32 lacks).
build_e2fsck() {
    local inputs build=$cache/e2fsprogs-build log=$cache/e2fsprogs-build.log
    inputs=$(fingerprint; source_version e2fsprogs; cat "$musl/lib/libc.a.inputs")
    if is_current "$cache/e2fsck" "$inputs"; then
        say "e2fsck is up to date"
        return
    fi
    say "building e2fsck from $(source_version e2fsprogs) (log: $log)"
    local started=$SECONDS
    rm -rf "$build"
    mkdir -p "$build"
    (cd "$build" && "$sources/e2fsprogs/configure" --host=riscv32-linux-musl CC="$guest_cc" BUILD_CC=gcc \
        CFLAGS="-Os -D_LARGEFILE64_SOURCE" ac_cv_func_lseek64=yes --disable-nls --disable-elf-shlibs \
        --disable-bsd-shlibs --disable-fuse2fs --disable-defrag --disable-imager --disable-resizer \
        --disable-debugfs --disable-uuidd --disable-e2initrd-helper --disable-fsck --disable-tdb \
        --without-libarchive --disable-backtrace) >"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; die "e2fsprogs configure failed; full log: $log"; }
    make -C "$build" -j"$jobs" libs >>"$log" 2>&1 && make -C "$build/e2fsck" -j"$jobs" e2fsck >>"$log" 2>&1 ||
        { tail -n 30 "$log" >&2; die "e2fsck build failed; full log: $log"; }
    "${cross}strip" -o "$cache/e2fsck.partial" "$build/e2fsck/e2fsck"
    check_rv32_elf "$cache/e2fsck.partial"
    check_no_compressed "$cache/e2fsck.partial"
    publish "$cache/e2fsck.partial" "$cache/e2fsck" "$inputs"
    say "e2fsck built in $((SECONDS - started)) s"
}

# ---- BusyBox --------------------------------------------------------------------------------------
# defconfig, then every line of linux/busybox.config on top (see that file), built out of tree
# with the musl compiler wrapper.
build_busybox() {
    local inputs build=$cache/busybox-build log=$cache/busybox-build.log
    inputs=$(fingerprint "$here/busybox.config"; source_version busybox; cat "$musl/lib/libc.a.inputs")
    if is_current "$cache/busybox" "$inputs" && [ -f "$cache/busybox.links" ]; then
        say "BusyBox is up to date"
        return
    fi
    say "building $(source_version busybox) (log: $log)"
    local started=$SECONDS
    rm -rf "$build"
    mkdir -p "$build"
    # KCONFIG_NOTIMESTAMP: no build date in the binary, so the same inputs give the same bytes.
    local bbmake=(env KCONFIG_NOTIMESTAMP=1 make -C "$sources/busybox" O="$build" HOSTCC=gcc CROSS_COMPILE="$cross" CC="$guest_cc")
    "${bbmake[@]}" defconfig >"$log" 2>&1 || { tail -n 20 "$log" >&2; die "BusyBox defconfig failed"; }
    apply_fragment "$here/busybox.config" "$build/.config"
    # Any question oldconfig still asks takes its default ("yes" ends on SIGPIPE: no pipefail).
    (set +o pipefail; yes '' | "${bbmake[@]}" oldconfig >>"$log" 2>&1) || { tail -n 20 "$log" >&2; die "BusyBox oldconfig failed"; }
    verify_fragment "$here/busybox.config" "$build/.config"
    "${bbmake[@]}" -j"$jobs" busybox busybox.links >>"$log" 2>&1 ||
        { tail -n 30 "$log" >&2; die "BusyBox build failed; full log: $log"; }
    check_rv32_elf "$build/busybox"
    check_no_compressed "$build/busybox"
    cp "$build/.config" "$cache/busybox.config.resolved"
    cp "$build/busybox.links" "$cache/busybox.links"
    cp "$build/busybox" "$cache/busybox.partial"
    publish "$cache/busybox.partial" "$cache/busybox" "$inputs"
    say "BusyBox built in $((SECONDS - started)) s"
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

# Our own programs: each linux/userland/NAME.c becomes /bin/NAME (init.c becomes /init).
build_userland() {
    local inputs source program
    inputs=$(fingerprint "$here"/userland/*.c "$here/initramfs.list" $(find "$here/rootfs" -type f | sort)
        cat "$musl/lib/libc.a.inputs" "$cache/busybox.inputs" "$cache/busybox.links" "$cache/e2fsck.inputs")
    if is_current "$cache/initramfs.cpio" "$inputs"; then
        say "userland and initramfs are up to date"
        return
    fi
    say "building the userland and the initramfs"
    rm -rf "$userland_build"
    mkdir -p "$userland_build"
    for source in "$here"/userland/*.c; do
        program=$(basename "$source" .c)
        "$guest_cc" -Os -std=gnu11 -Wall -Wextra -Werror -fno-ident -s -Wl,--build-id=none \
            -o "$userland_build/$program" "$source" || die "building userland/$program.c failed"
        check_rv32_elf "$userland_build/$program"
        check_no_compressed "$userland_build/$program"
    done
    cp "$cache/busybox" "$userland_build/busybox"
    cp "$cache/e2fsck" "$userland_build/e2fsck"
    # The list: linux/initramfs.list, then /bin/NAME for each of our programs, then one symbolic
    # link per BusyBox applet (busybox.links names each applet's path).
    {
        cat "$here/initramfs.list"
        echo "# Generated by linux/build.sh: our programs and BusyBox's applets."
        for source in "$here"/userland/*.c; do
            program=$(basename "$source" .c)
            [ "$program" = init ] || echo "file /bin/$program \${USERLAND}/$program 0755 0 0"
        done
        local link
        while IFS= read -r link; do
            [ "$link" = /bin/busybox ] || echo "slink $link /bin/busybox 0777 0 0"
        done <"$cache/busybox.links"
    } >"$userland_build/initramfs.list"
    local tool
    tool=$(gen_init_cpio_tool)
    # -t 0: every entry dated 1970, so the archive depends only on its contents.
    USERLAND=$userland_build ROOTFS=$here/rootfs "$tool" -t 0 "$userland_build/initramfs.list" >"$cache/initramfs.cpio.partial" ||
        die "gen_init_cpio failed on linux/initramfs.list"
    publish "$cache/initramfs.cpio.partial" "$cache/initramfs.cpio" "$inputs"
}

# ---- Main -----------------------------------------------------------------------------------------
lock() { # lock FILE: one build at a time per cache directory (on file descriptor 9)
    if command -v flock >/dev/null; then
        exec 9>"$1"
        flock 9
    fi
}

# --defconfig: the kernel source is extracted (or checked) under the guest's cache lock, then
# the standard kernel is built under a lock of its own, so that the two builds, which only
# read the source tree, do not wait for each other.
main_defconfig() {
    check_tools
    mkdir -p "$cache" "$defconfig_cache"
    lock "$cache/.lock"
    extract_source
    lock "$defconfig_cache/.lock"
    build_defconfig_kernel
    say "$(printf '%-20s %s (%s bytes)' Image "$defconfig_cache/Image" "$(stat -c %s "$defconfig_cache/Image")")"
}

main() {
    [ $# -le 1 ] || die "too many arguments (usage: linux/build.sh [--defconfig])"
    case ${1:-} in
    "") ;;
    --defconfig) main_defconfig && return ;;
    *) die "unknown argument: $1 (usage: linux/build.sh [--defconfig])" ;;
    esac
    check_tools
    mkdir -p "$cache"
    lock "$cache/.lock"
    extract_source
    build_kernel
    install_headers
    build_firmware
    fetch_source musl "$musl_version"
    fetch_source busybox "$busybox_version"
    fetch_source e2fsprogs "$e2fsprogs_version"
    build_musl
    build_busybox
    build_e2fsck
    build_userland
    local file
    for file in Image initramfs.cpio understudy-sbi.bin e2fsck; do
        say "$(printf '%-20s %s (%s bytes)' "$file" "$cache/$file" "$(stat -c %s "$cache/$file")")"
    done
}

main "$@"
