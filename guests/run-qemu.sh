#!/bin/sh
# Runs guest programs on QEMU's virt board (the reference machine) and reports each one's
# exit status. Usage: run-qemu.sh [name...]   (default: every program in tests/)
# QEMU exits 0 when the guest passes and with the guest's code otherwise (rt_exit).
# ICOUNT=shift=0,sleep=off makes time across a sleeping WFI repeatable (see tests/README.md).
cd "$(dirname "$0")" || exit 2
QEMU="${QEMU:-qemu-system-riscv32}"
CPU="${CPU:-rv32,c=true,f=true,d=true,h=false,sstc=false,zba=false,zbb=false,zbc=false,zbs=false}"
ICOUNT="${ICOUNT:-shift=0}"
# Programs that need a prepared disk image (or, for htif, Spike's host interface; for net_echo,
# a network peer) run from the node tests instead.
needs_disk=" disk disk_ro virtio_hostile pair_workload pair_small sim_workload htif net_echo "
if [ $# -eq 0 ]; then
    set -- $(for f in tests/*.c tests/*.S; do
        [ -e "$f" ] || continue
        name=$(basename "${f%.*}")
        case "$needs_disk" in *" $name "*) ;; *) echo "$name" ;; esac
    done)
fi
failed=0
for name in "$@"; do
    timeout 60 "$QEMU" -M virt -bios none -nographic -icount "$ICOUNT" -cpu "$CPU" \
        -kernel "build/$name.elf" </dev/null
    status=$?
    if [ $status -ne 0 ]; then
        echo "qemu: $name exited with $status"
        failed=1
    fi
done
exit $failed
