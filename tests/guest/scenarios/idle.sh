# Scenario "idle": a measurement, not a test (issue 10's closing note: the extra exits guarding adds
# to an idle minute). `vigild status` (per-CPU exits per reason), 60 s idle, `vigild status` again;
# then `vigild protect --lock` and the same again. Sourced by /init (tests/guest/init.sh). Run it with
#   dotnet out/artifacts/bin/Vigil.Tool/release/vigil.dll run --emulator qemu --cpus 2 --scenario idle --headless
# and subtract: lines "VIGIL-GUEST: idle-status PHASE: vigild: cpu N ...", PHASE = unprotected-start,
# unprotected-start2, unprotected-end, protected-start, protected-start2, protected-end. IDLE_SECONDS is each idle
# period's length. start2 follows start at once: start2 - start is what one status read costs, to take off
# end - start2 (as vigil bench does). `vigil.idle=S` on the kernel command line (`vigil run --append`) sets
# another length: an idle Bochs guest's clock runs far slower than the wall clock.
IDLE_SECONDS=$(sed -n 's/.*vigil\.idle=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
IDLE_SECONDS=${IDLE_SECONDS:-60}

mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"
dmesg | grep -m1 -E 'tsc: (Refined TSC|Detected).*MHz' | sed 's/^\[[^]]*\] /VIGIL-GUEST: kernel: /'

# idle_period NAME: status twice, IDLE_SECONDS of nothing, status (with the guest's uptime around the sleep).
idle_period() {
	vigild status 2>&1 | sed "s/^/VIGIL-GUEST: idle-status $1-start: /"
	vigild status 2>&1 | sed "s/^/VIGIL-GUEST: idle-status $1-start2: /"
	mark "idle $1 start uptime=$(cut -d' ' -f1 /proc/uptime)"
	sleep "$IDLE_SECONDS"
	mark "idle $1 end uptime=$(cut -d' ' -f1 /proc/uptime)"
	vigild status 2>&1 | sed "s/^/VIGIL-GUEST: idle-status $1-end: /"
}

idle_period unprotected
vigild protect --lock 2>&1 | sed 's/^/VIGIL-GUEST: protect: /'
mark "guard protect --lock done"
idle_period protected
return 0
