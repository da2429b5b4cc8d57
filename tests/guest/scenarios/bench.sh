# Scenario "bench": the benchmark's guest side (issue 12), a measurement, not a test. `vigil bench`
# (tools/Vigil.Tool/Commands/BenchCommand.cs) boots it with Vigil on and with `hypervisor = off`, and
# parses the lines below. Sizes come from the kernel command line (unknown KEY=VALUE parameters are
# init's environment): bench_idle (seconds of each idle period, default 60), bench_scale (workload
# multiplier, default 5), bench_samples (round trips per operation, default 2000), bench_toggles
# (static-key flips, default 20); bench_idle=0 leaves the idle periods out (the single-CPU -icount boot
# that counts instructions deterministically). Phases: "plain" (Vigil without the guard, or no hypervisor at all),
# then, under Vigil only, "guarded" after `vigild protect --lock`. Lines:
#   VIGIL-BENCH: ...                            benchload's measurements (tests/guest/programs/benchload.c)
#   VIGIL-GUEST: bench-phase NAME               the phase the following lines belong to
#   VIGIL-GUEST: bench-status TAG: vigild: ...  `vigild status` (per-CPU exits per reason) around each step
#   VIGIL-GUEST: bench-idle TAG uptime=S        the guest's uptime around each idle period
#   VIGIL-GUEST: bench tsc-at-scenario=N        the TSC when the scenario starts (under -icount: guest
#                                               instructions since reset, idle time included)
: "${bench_idle:=60}" "${bench_scale:=5}" "${bench_samples:=2000}" "${bench_toggles:=20}"

mkdir -p /run /tmp && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /tmp 2>/dev/null
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"
mark "bench idle=$bench_idle scale=$bench_scale samples=$bench_samples toggles=$bench_toggles"
mark "bench tsc-at-scenario=$(benchload tsc)"
dmesg | grep -m1 -E 'tsc: (Refined TSC|Detected).*MHz' | sed 's/^\[[^]]*\] /VIGIL-GUEST: kernel: /'

vigil=no
vigild status >/dev/null 2>&1 && vigil=yes
mark "bench vigil=$vigil"

# status TAG: the hypervisor's exit counters (nothing without Vigil).
status() {
	[ "$vigil" = yes ] && vigild status 2>&1 | grep '^vigild: cpu ' | sed "s/^/VIGIL-GUEST: bench-status $1: /"
	return 0
}

# A static key the kernel flips from a sysctl: patching its call sites is the kernel's own text
# patching, which the guard lets through (allowed guarded-page writes).
toggle=""
for f in /proc/sys/kernel/sched_schedstats /proc/sys/kernel/timer_migration; do
	[ -w "$f" ] && { toggle=$f; break; }
done
mark "bench toggle=${toggle:-none}"

# phase NAME: round trips, static-key flips and the workload, each between two status reads.
phase() {
	mark "bench-phase $1"
	status "$1-roundtrip-start"
	benchload roundtrip "$bench_samples"
	status "$1-roundtrip-end"
	if [ -n "$toggle" ]; then
		old=$(cat "$toggle")
		status "$1-toggle-start"
		benchload toggle "$toggle" "$bench_toggles"
		status "$1-toggle-end"
		echo "$old" >"$toggle"
	fi
	status "$1-workload-start"
	benchload workload "$bench_scale"
	status "$1-workload-end"
}

# idle NAME: two status reads back to back (what reading the counters costs), the idle period, one more.
idle() {
	[ "$bench_idle" = 0 ] && return 0
	status "$1-idle-start"
	status "$1-idle-start2"
	mark "bench-idle $1-start uptime=$(cut -d' ' -f1 /proc/uptime)"
	sleep "$bench_idle"
	mark "bench-idle $1-end uptime=$(cut -d' ' -f1 /proc/uptime)"
	status "$1-idle-end"
}

phase plain
if [ "$vigil" = yes ]; then
	idle plain
	protect=$(vigild protect --lock 2>&1)
	rc=$?
	echo "$protect" | sed 's/^/VIGIL-GUEST: protect: /'
	mark "bench protect rc=$rc"
	if [ "$rc" = 0 ]; then
		idle guarded
		phase guarded
	else
		mark "!!! bench: 'vigild protect --lock' failed: no guarded figures"
	fi
fi
mark "bench done"
return 0
