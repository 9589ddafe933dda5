#!/bin/busybox sh
# PID 1 of patchcheck's Linux guest (a busybox initramfs; see patchcheck/guests/linux.py).
#
# 1. Mounts devtmpfs, proc and sysfs; the console is the kernel's (console=ttyS0).
# 2. Waits until pciehp has settled on every slot it drives: the slot registers, read from
#    the port's config space in sysfs, show no pending event, no blinking power indicator,
#    and power that agrees with presence (off and empty, or on and occupied). Polled every
#    0.1 s with one read of the slot registers (each process costs the guest milliseconds
#    of TCG); no fixed sleep. A slot that does not settle within pc_settle seconds (kernel
#    command line, default 60) is reported as unsettled.
# 3. Prints the readiness marker with each slot's registers, then a heartbeat every 0.1 s
#    through the kernel log (the destination's first heartbeat is what proves the guest
#    survived the migration; the console shows it after the kernel's timestamp).
# Pauses are `pause`: the shell's own `read -t` on a FIFO nobody writes, not a `usleep`
# process; a heartbeat starts no process either.
#
# Marker lines (parsed by patchcheck.guests.linux):
#   PATCHCHECK-READY settled=yes|no uptime=<s> slots=<port>:ctl=0x....:sta=0x....[,...]|none
#   PATCHCHECK-CLOCK <the kernel's clocksource>   (for reading a console by hand)
#   [<kernel time>] PATCHCHECK-HEARTBEAT <n> uptime=<s>
export PATH=/bin
/bin/busybox mkdir -p /dev /proc /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkfifo /pause && exec 3<>/pause

# --- functions (unit-tested on a fake config space: tests/unit/test_linux_guest.py) ---
pci=/sys/bus/pci/devices

uptime_s() { read -r up _ </proc/uptime; echo "$up"; }

# pause SECONDS (fractions allowed): wait without starting a process (init opens fd 3).
pause() { read -r -t "$1" _ <&3; }

# slot DEVICE CAP: "SLTCAP SLTCTL SLTSTA" in decimal, from one read of the 8 bytes at CAP+20
# (one process per poll: under TCG every fork and exec of the guest costs milliseconds).
slot() {
    set -- $(od -An -tu1 -v -j $(($2 + 20)) -N 8 "$pci/$1/config")
    echo "$(($1 + ($2 << 8) + ($3 << 16) + ($4 << 24))) $(($5 + ($6 << 8))) $(($7 + ($8 << 8)))"
}

# rd DEVICE OFFSET SIZE: a little-endian config-space value, in decimal.
rd() {
    set -- $(od -An -tu1 -v -j "$2" -N "$3" "$pci/$1/config")
    v=0 s=0
    for b in "$@"; do v=$((v + (b << s))); s=$((s + 8)); done
    echo "$v"
}

# expcap DEVICE: offset of the PCI Express capability (id 0x10).
expcap() {
    p=$(($(rd "$1" 52 1) & 252)) n=0
    while [ "$p" -ne 0 ] && [ "$n" -lt 48 ]; do
        [ "$(rd "$1" "$p" 1)" -eq 16 ] && { echo "$p"; return 0; }
        p=$(($(rd "$1" $((p + 1)) 1) & 252)) n=$((n + 1))
    done
    return 1
}

# settled SLTCAP SLTCTL SLTSTA: whether pciehp has nothing left to do on the slot.
settled() {
    [ $(($3 & 0x11f)) -eq 0 ] || return 1           # ABP PFD MRLSC PDC CC DLLSC pending
    [ $(($2 & 0x300)) -ne 512 ] || return 1         # power indicator blinking: in transition
    [ $(($1 & 0x2)) -ne 0 ] || return 0             # no power controller: nothing to agree
    if [ $(($2 & 0x400)) -ne 0 ]; then [ $(($3 & 0x40)) -eq 0 ]; else [ $(($3 & 0x40)) -ne 0 ]; fi
}
# --- end of functions ---

ports=""
for service in /sys/bus/pci_express/drivers/pciehp/*:pcie*; do
    [ -e "$service" ] || continue
    name=${service##*/}
    port=${name%:pcie*}
    cap=$(expcap "$port") && ports="$ports $port:$cap"
done

limit=${pc_settle:-60}
start=$(uptime_s)
ok=yes
while :; do
    pending=""
    for entry in $ports; do
        settled $(slot "${entry%:*}" "${entry##*:}") || pending="$pending $entry"
    done
    [ -z "$pending" ] && break
    read -r now _ </proc/uptime
    if [ "${now%.*}" -ge $((${start%.*} + limit)) ]; then ok=no; break; fi
    pause 0.1
done
report=""
for entry in $ports; do
    set -- $(slot "${entry%:*}" "${entry##*:}")
    report="$report${report:+,}$(printf '%s:ctl=0x%04x:sta=0x%04x' "${entry%:*}" "$2" "$3")"
done

echo "PATCHCHECK-READY settled=$ok uptime=$(uptime_s) slots=${report:-none}"
dmesg | grep -E 'pciehp|Slot\(' | sed 's/^/PATCHCHECK-KLOG /'
read -r clock </sys/devices/system/clocksource/clocksource0/current_clocksource
echo "PATCHCHECK-CLOCK $clock"
# Heartbeats go through the kernel log (/dev/kmsg, level 2: printed despite `quiet`), whose
# console output polls the UART; the tty path above waits for the UART's transmit interrupt,
# and a heartbeat loop blocked in a tty write would make a surviving guest look dead.
n=0
while :; do
    n=$((n + 1))
    read -r up _ </proc/uptime
    echo "<2>PATCHCHECK-HEARTBEAT $n uptime=$up" >/dev/kmsg
    pause 0.1
done
