# Scenario "guard-strict": the kernel guard under the built-in STRICT rules (issue 10 item 7(o), its blocked half).
# `vigild protect --strict --lock`, then only technique o of the attack module (tests/guest/modules/attack: an
# ftrace hook with IPMODIFY registered by a module loaded after Lock), the guard's events and status, power-off.
# Sourced by /init (tests/guest/init.sh). The emulator test (GuardStrictSvmBoot) parses the same lines as the guard
# scenario's (tests/guest/scenarios/guard.sh): VIGIL-ATTACK, VIGIL-GUEST: events-mark, VIGIL-EVENT.
#
# Under the strict rules ftrace's text_poke of the call site (a CALL into a trampoline allocated after Protect:
# jump-into-new-code) is refused, so __text_poke's own read-back BUG()s while it holds text_mutex (docs/GUARD.md):
# the insmod dies before the module prints its report. Then this script prints the report for it (landed=no, with
# the kernel's lines), and nothing after needs text_mutex: events, status and power-off do not patch text.
# Under the default rules the hook lands and the module reports landed=yes: that is how the test is able to fail.
ATTACK_TIMEOUT=60

mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null

protect=$(vigild protect --strict --lock 2>&1)
protect_rc=$?
echo "$protect" | sed 's/^/VIGIL-GUEST: protect: /'
mark "guard protect --strict --lock rc=$protect_rc"
guarded=no
[ "$protect_rc" = 0 ] && guarded=yes
[ "$guarded" = no ] && mark "!!! GUARD NOT ACTIVE: 'vigild protect --strict --lock' failed: technique o runs against an UNGUARDED kernel"
mark "guard active=$guarded"
vigild status | grep 'rules:'

last_seq() {
	vigild events --json 2>/dev/null | tail -n1 | sed -n 's/.*"seq": *\([0-9][0-9]*\).*/\1/p'
}
mark "events-mark attack-o seq=$(last_seq | grep . || echo none)"

dmesg -c >/dev/null 2>&1
stty -F /dev/console -tostop 2>/dev/null
# kallsyms_lookup_name from /proc/kallsyms: the module's own fallback (a kprobe, armed through ftrace) would be
# refused by the strict rules before technique o's hook is even tried.
lookup=$(sed -n 's/^\([0-9a-f]*\) T kallsyms_lookup_name$/0x\1/p' /proc/kallsyms | head -n1)
mark "kallsyms_lookup_name at ${lookup:-unknown}"
mark "ftrace target at $(sed -n 's/^\([0-9a-f]*\) T __x64_sys_ustat$/0x\1/p' /proc/kallsyms | head -n1)"
insmod /modules/attack.ko technique=o lookup="${lookup:-0}" >/tmp/insmod.out 2>&1 &
pid=$!
polls=0
while kill -0 "$pid" 2>/dev/null && [ "$polls" -lt $((ATTACK_TIMEOUT * 10)) ]; do
	usleep 100000
	polls=$((polls + 1))
done
if kill -0 "$pid" 2>/dev/null; then
	rc=stuck
else
	wait "$pid"
	rc=$?
	[ "$rc" -lt 128 ] && rmmod attack 2>/dev/null
fi
mark "attack o insmod rc=$rc after $((polls / 10)).$((polls % 10)) s $(tr '\n' ' ' </tmp/insmod.out)"
log=$(dmesg)
if ! echo "$log" | grep -q "VIGIL-ATTACK: technique=o "; then
	if echo "$log" | grep -q 'kernel BUG at arch/x86/kernel/alternative.c'; then
		echo "VIGIL-ATTACK: technique=o landed=no text_poke's read-back BUG()ed while ftrace patched the call site: the CALL did not land, the hook never ran (insmod died, text_mutex stays held)"
	else
		echo "VIGIL-ATTACK: technique=o landed=no setup-failed: the module printed no report (insmod rc=$rc)"
	fi
	echo "$log" | grep -E 'BUG|Oops|RIP:|Call Trace|ftrace|general protection|invalid opcode|WARNING' | head -n 30 | sed 's/^\[[^]]*\] /VIGIL-GUEST: kernel: /'
fi

mark "events-mark end seq=$(last_seq | grep . || echo none)"
events=$(vigild events --json 2>/tmp/events.err)
events_rc=$?
[ -n "$events" ] && echo "$events" | sed 's/^/VIGIL-EVENT: /'
mark "vigild events rc=$events_rc count=$(echo "$events" | grep -c .) $(tr '\n' ' ' </tmp/events.err)"
vigild status
mark "vigild status rc=$?"
mark "guard-strict scenario done guarded=$guarded"
return 0
