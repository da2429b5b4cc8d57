# Scenario "guard": the kernel guard's boot (issue 10). `vigild protect --lock`, then the attack suite
# (tests/guest/modules/attack: one insmod per technique; tests/guest/programs/forge.c: forged
# hypercalls from ring 3), the benign suite (tests/guest/programs/benign.sh), the guard's events and
# status, power-off. Sourced by /init (tests/guest/init.sh). The emulator tests (GuardSvmBoot,
# GuardVmxBoot) parse:
#   VIGIL-ATTACK: technique=X landed=yes|no ...   one per technique (two for n: ring 0 and ring 3)
#   VIGIL-BENIGN: name=NAME ok=yes|no ...         one per benign check
#   VIGIL-GUEST: events-mark PHASE seq=N|none     the last event sequence number before each phase
#                                                 (attack-X, benign, end): which events a phase caused
#   VIGIL-EVENT: {...}                            every event, `vigild events --json`, at the end
# Without the guard (the hypervisor side not there, or `vigild protect --lock` failing) every attack
# lands and is undone by the module itself, and the guest survives all of them: that is how the
# suites are proven able to fail.
#
# Order: d (text_poke) runs LAST. Under a guard its refused write makes __text_poke's own read-back
# BUG() while it holds text_mutex (docs/GUARD.md): the insmod dies and every later text patch (ftrace,
# kprobes, static keys, module jump labels) would hang. So the benign suite and o (ftrace, which the
# default rules record but let through) run before it; the module also refuses to start d or o when
# text_mutex is already held, and no insmod is waited for longer than ATTACK_TIMEOUT seconds.
ATTACK_TIMEOUT=60

# tracefs and debugfs for the benign suite; /run for vigild's secret.
mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null

mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"

# The hypervisor's reservation (technique m writes there): "... KiB reserved at 0xADDR".
status=$(vigild status 2>&1)
echo "$status"
hvpa=$(echo "$status" | sed -n 's/.* reserved at \(0x[0-9A-Fa-f]*\).*/\1/p' | head -n1)
mark "hypervisor reservation at ${hvpa:-unknown}"

# Protect and lock. Loud when it fails: everything after runs against an unguarded kernel.
protect=$(vigild protect --lock 2>&1)
protect_rc=$?
echo "$protect" | sed 's/^/VIGIL-GUEST: protect: /'
mark "guard protect --lock rc=$protect_rc"
if [ "$protect_rc" != 0 ]; then
	guarded=no
	mark "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
	mark "!!! GUARD NOT ACTIVE: 'vigild protect --lock' failed (rc=$protect_rc)."
	mark "!!! The attack suite below runs against an UNGUARDED kernel: every technique is"
	mark "!!! expected to land (and to undo itself). Nothing here shows protection."
	mark "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
else
	guarded=yes
fi
mark "guard active=$guarded"

# last_seq: the sequence number of the newest event (empty without events or without `vigild events`).
last_seq() {
	vigild events --json 2>/dev/null | tail -n1 | sed -n 's/.*"seq": *\([0-9][0-9]*\).*/\1/p'
}

# events_mark PHASE: where PHASE's events begin in the sequence.
events_mark() {
	local seq
	seq=$(last_seq)
	mark "events-mark $1 seq=${seq:-none}"
}

# attack X [PARAM=VALUE...]: insmod the attack module for technique X (it prints its VIGIL-ATTACK line
# to the console itself); waits at most ATTACK_TIMEOUT seconds. When the module printed no report (it
# died, or hangs), says why in a VIGIL-ATTACK line of its own.
attack() {
	local t=$1 pid rc polls=0 log
	shift
	events_mark "attack-$t"
	if [ -n "$attack_stuck" ]; then
		# A module whose init never finished blocks every later insmod of the same name.
		echo "VIGIL-ATTACK: technique=$t landed=no setup-failed: not tried, the insmod of technique $attack_stuck never finished"
		return
	fi
	dmesg -c >/dev/null 2>&1
	# Let the UART send what is queued, so the module's console lines do not land inside a script line.
	stty -F /dev/console -tostop 2>/dev/null
	insmod /modules/attack.ko technique="$t" "$@" >/tmp/insmod.out 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ "$polls" -lt $((ATTACK_TIMEOUT * 10)) ]; do
		usleep 100000
		polls=$((polls + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		rc=stuck
		attack_stuck=$t
	else
		wait "$pid"
		rc=$?
		rmmod attack 2>/dev/null
		# Killed (an oops in the module's init): the module stays half-loaded and a later insmod would wait for it.
		[ "$rc" -ge 128 ] && attack_stuck=$t
	fi
	mark "attack $t insmod rc=$rc after $((polls / 10)).$((polls % 10)) s $(tr '\n' ' ' </tmp/insmod.out)"
	log=$(dmesg)
	if ! echo "$log" | grep -q "VIGIL-ATTACK: technique=$t "; then
		if [ "$t" = d ] && echo "$log" | grep -q 'kernel BUG at arch/x86/kernel/alternative.c'; then
			# __text_poke's BUG_ON(memcmp(addr, opcode, len)): the kernel's own read-back found the JMP absent.
			echo "VIGIL-ATTACK: technique=d landed=no text_poke's read-back BUG()ed: the written bytes did not land (insmod died, text_mutex stays held) $(echo "$log" | grep -m1 'vigil-attack: d:' | sed 's/^\[[^]]*\] //')"
		else
			echo "VIGIL-ATTACK: technique=$t landed=no setup-failed: the module printed no report (insmod rc=$rc)"
		fi
		echo "$log" | grep -E 'BUG|Oops|RIP:|general protection|invalid opcode|WARNING' | head -n 20 | sed 's/^\[[^]]*\] /VIGIL-GUEST: kernel: /'
	fi
}

# The attack suite: every technique but d and o (see the top).
for t in a b c e f g h i j k l p; do
	attack "$t"
done
attack m hvpa="${hvpa:-0}"
attack n
events_mark attack-n-ring3
forge
mark "forge rc=$?"

# The benign suite, after Lock: everything must work, with no block verdict among its events.
# `vigild status` right before and after it (per-CPU exits per reason, for issue 10's closing note:
# the exits the benign suite causes under the guard), as "VIGIL-GUEST: benign-status before|after: ...".
vigild status 2>&1 | sed 's/^/VIGIL-GUEST: benign-status before: /'
events_mark benign
benign
benign_rc=$?
vigild status 2>&1 | sed 's/^/VIGIL-GUEST: benign-status after: /'
mark "benign rc=$benign_rc"

# ftrace hook (recorded by the default rules), then text_poke (its refusal BUG()s in the kernel).
attack o
attack d

events_mark end
events=$(vigild events --json 2>/tmp/events.err)
events_rc=$?
[ -n "$events" ] && echo "$events" | sed 's/^/VIGIL-EVENT: /'
mark "vigild events rc=$events_rc count=$(echo "$events" | grep -c .) $(tr '\n' ' ' </tmp/events.err)"
vigild status
mark "vigild status rc=$?"
mark "guard scenario done guarded=$guarded"
return 0
