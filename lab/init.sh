#!/bin/sh
# guestmem lab: /init of the initramfs (busybox sh). `guestmem lab run` fills the @@...@@ fields.
# The console (first serial port) gets these messages and the kernel log; the data port (second
# serial port) gets only the driver's JSON lines, which the host reads as the results.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
DATA=@@DATA@@
echo "lab-init: up at $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"
ls -l /dev/kvm
export HOME=/tmp PATH=/bin LD_LIBRARY_PATH=@@LIBPATH@@
# guest code runs under TCG here: give KVM_RUN far longer than on hardware
export GUESTMEM_KVM_RUN_TIMEOUT_MS=60000
# KVM_PRE_FAULT_MEMORY of 2 MiB takes well under a second here; 6.12 never returns from one after a
# memslot delete (obsolete MMU root) until a signal comes: the deadline is that signal
export GUESTMEM_KVM_PRE_FAULT_TIMEOUT_MS=5000
cd /app
/bin/node @@DRIVER@@ @@JOB@@ > "$DATA"
rc=$?
echo "lab-init: driver exited with $rc at $(cut -d' ' -f1 /proc/uptime) s"
echo "{\"t\":\"exit\",\"rc\":$rc,\"uptime\":$(cut -d' ' -f1 /proc/uptime)}" > "$DATA"
# -no-reboot turns the reboot into QEMU's exit (tinyconfig has no ACPI: poweroff would only halt)
reboot -f
