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
# The runs the driver starts go into a memory cgroup that leaves 160 MiB for the driver and the kernel:
# a scenario that exhausts memory is ended by the cgroup's OOM killer (src/lab/supervise.ts).
if mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && echo +memory > /sys/fs/cgroup/cgroup.subtree_control; then
  avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
  mkdir -p /sys/fs/cgroup/runs
  echo $(( (avail - 160 * 1024) * 1024 )) > /sys/fs/cgroup/runs/memory.max
  export GUESTMEM_LAB_CGROUP=/sys/fs/cgroup/runs
  echo "lab-init: memory cgroup for runs, limit $(( (avail - 160 * 1024) / 1024 )) MiB of $(( avail / 1024 )) MiB available"
else
  echo "lab-init: no memory cgroup (the kernel lacks CONFIG_MEMCG): a run that exhausts memory meets the global OOM killer"
fi
cd /app
/bin/node @@DRIVER@@ @@JOB@@ > "$DATA"
rc=$?
echo "lab-init: driver exited with $rc at $(cut -d' ' -f1 /proc/uptime) s"
echo "{\"t\":\"exit\",\"rc\":$rc,\"uptime\":$(cut -d' ' -f1 /proc/uptime)}" > "$DATA"
# -no-reboot turns the reboot into QEMU's exit (tinyconfig has no ACPI: poweroff would only halt)
reboot -f
