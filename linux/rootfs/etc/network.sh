#!/bin/sh
# Brings the guest onto its network and starts its service; /init runs it before the shell.
# eth0 gets its address from the kernel command line (ip=..., configured before /init runs)
# or else by DHCP (passt answers it: 10.0.2.15/24, the host at 10.0.2.2).
ip link set lo up
if [ ! -e /sys/class/net/eth0 ]; then
    echo "understudy: no network interface"
    exit 0
fi
ip link set eth0 up
case " $(cat /proc/cmdline) " in
*" ip="*) ;;
*) udhcpc -i eth0 -s /etc/udhcpc.script -q -n -t 5 -T 1 >/dev/null 2>&1 || echo "understudy: no DHCP answer on eth0" ;;
esac
address=$(ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9./]*\).*/\1/p')
route=$(ip route show default | sed -n 's/^default via \([0-9.]*\).*/\1/p')
echo "understudy: eth0 ${address:-has no address}${route:+, gateway $route}"
# The service: GET and PUT of the files in /data, on port 80.
if [ -n "$address" ]; then
    filehttpd 80 &
fi
