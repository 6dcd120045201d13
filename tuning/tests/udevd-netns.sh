#!/usr/bin/env bash
# udevd-netns.sh RULE LOG HOST_MNT_NS: runs a real systemd-udevd with only RULE (plus the stock
# 80-net-setup-link.rules, which sets the ENV{ID_NET_DRIVER} that RULE matches) and makes
# veth devices for it to act on. rps.bats runs it as
#   unshare --net --mount --pid --kill-child --mount-proc --propagation private \
#           udevd-netns.sh RULE LOG "$(readlink /proc/self/ns/mnt)"
# so that nothing it does reaches the host:
# - the network namespace is new: the kernel sends the uevents of a net device only into the
#   namespace that holds it, so this udevd sees the veths made here and none of the host's;
# - the mount namespace is private: /sys is mounted again (its net directories then show this
#   namespace's devices), and tmpfs covers /run (udevd's control socket and database), /dev
#   (device nodes and symlinks udevd makes for the host's block or input devices, whose
#   uevents do reach every namespace) and the rules directories, so no host rule runs and
#   those other devices match nothing;
# - the PID namespace: this script is its PID 1, and when it exits the kernel kills udevd and
#   its workers, and the namespace's veths go with it, even if the test is killed.
# Prints "NAME=rps_cpus" lines (rx-0 unless NAME says another queue); udevd's debug log goes to
# LOG. HOST_MNT_NS is the caller's mount namespace: the script refuses to mount anything in it.
# Exit 77: something the test cannot do here (it skips); 0: ran; other: failed.
set -euo pipefail

rule=$1 log=$2 host_mnt=$3

udevd=''
for f in /usr/lib/systemd/systemd-udevd /lib/systemd/systemd-udevd; do
	if [[ -x $f ]]; then udevd=$f && break; fi
done
[[ -n $udevd ]] || { echo "no systemd-udevd" >&2 && exit 77; }
stock=''
for f in /usr/lib/udev/rules.d/80-net-setup-link.rules /lib/udev/rules.d/80-net-setup-link.rules; do
	if [[ -f $f ]]; then stock=$f && break; fi
done
[[ -n $stock ]] || { echo "no 80-net-setup-link.rules" >&2 && exit 77; }
net_setup_link=$(<"$stock")

# Guards: run only where the namespaces are new (never against the host's udev or /run).
[[ $$ == 1 ]] || { echo "not PID 1 of a PID namespace of its own" >&2 && exit 1; }
if [[ $(ip -o link show | wc -l) != 1 ]]; then
	echo "the network namespace is not a new one (it has more than lo)" >&2
	exit 1
fi
if [[ $(readlink /proc/self/ns/mnt) == "$host_mnt" ]]; then
	echo "the mount namespace is the caller's: the mounts below would cover its /sys, /run, /dev" >&2
	exit 1
fi
# Read before the mounts: RULE or LOG's directory may lie under /run or /dev (TMPDIR=/dev/shm).
rule_text=$(<"$rule")
exec 3>"$log"

cannot() { echo "cannot $*" >&2 && exit 77; }
mount -t sysfs sysfs /sys || cannot "mount sysfs"
mount -t tmpfs -o mode=0755 tmpfs /run || cannot "mount tmpfs on /run"
mount -t tmpfs -o mode=0755 tmpfs /dev || cannot "mount tmpfs on /dev"
mknod -m 0666 /dev/null c 1 3 || cannot "make /dev/null"
for d in /etc/udev/rules.d /usr/lib/udev/rules.d /lib/udev/rules.d /usr/local/lib/udev/rules.d; do
	# /lib is a link to /usr/lib on merged-/usr systems: mounting twice is harmless.
	if [[ -d $d ]]; then mount -t tmpfs -o mode=0755 tmpfs "$d" || cannot "mount tmpfs on $d"; fi
done
printf '%s\n' "$net_setup_link" >/usr/lib/udev/rules.d/80-net-setup-link.rules
printf '%s\n' "$rule_text" >/etc/udev/rules.d/90-ringplane-veth-rps.rules

SYSTEMD_LOG_TARGET=console "$udevd" --debug >&3 2>&1 &
pid=$!
stop() {
	timeout 10 udevadm control --exit 2>/dev/null || kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
trap stop EXIT
# 20 s: a loaded 2-vCPU CI host can be slow to start it, and a miss fails the test
for _ in $(seq 400); do
	[[ -S /run/udev/control ]] && break
	kill -0 "$pid" 2>/dev/null || { echo "systemd-udevd exited at start (see $log)" >&2 && exit 1; }
	sleep 0.05
done
[[ -S /run/udev/control ]] || { echo "systemd-udevd made no control socket (see $log)" >&2 && exit 1; }

rps() { echo "$1=$(cat "/sys/class/net/${2:-$1}/queues/${3:-rx-0}/rps_cpus")"; }

ip link add rpta type veth peer name rptb 2>/dev/null || { echo "cannot make a veth pair" >&2 && exit 77; }
ip link add rptc numrxqueues 2 type veth peer name rptd numrxqueues 2
udevadm settle --timeout=10
rps rpta
rps rptb
rps rptc
rps rptc/rx-1 rptc rx-1
# A rename is udev's ACTION "move": the rule does not run, and the mask stays.
ip link set rptb name rpte
udevadm settle --timeout=10
rps rpte
# Not a veth: ID_NET_DRIVER is "bridge", the rule does not match. Only where the bridge module
# is loaded (or built in) already: making one would load it into the host's kernel for good.
if [[ -d /sys/module/bridge ]] && ip link add rptbr type bridge 2>/dev/null; then
	udevadm settle --timeout=10
	rps rptbr
fi
