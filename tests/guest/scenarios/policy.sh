# Scenario "policy": delivering the policy (issue 11 item 4). The same script serves two boots that differ only in
# the \EFI\vigil\default.pol on their ESP (tests/Vigil.Tests/Emulator/PolicyBootTests.cs):
#   - a policy that audits what the built-in rules block (WRMSR LSTAR: technique i of the attack module lands and
#     is recorded as audit), in force from launch;
#   - a damaged file: vigil.efi says why on its console and log port, the built-in rules are in force, i is blocked.
# Steps: `vigild status` (which policy is in force); `vigild protect` (no lock); technique i; `vigild protect
# --policy /etc/vigil/policies/audit.pol` BEFORE Lock (replaces the rules) and technique i again; `vigild lock`;
# `vigild protect --policy` AFTER Lock (refused: NotPermitted, said by vigild); events; status; power-off.
# Lines for the tests (the guard scenario's, parsed by GuardReport):
#   VIGIL-ATTACK: technique=i landed=yes|no ...    twice (phases attack-i-first, attack-i-handed)
#   VIGIL-GUEST: events-mark PHASE seq=N|none      before each attack and at the end
#   VIGIL-GUEST: protect --policy before-lock rc=N / after-lock rc=N, with vigild's words as "protect-policy: ..."
#   VIGIL-EVENT: {...}                             every event at the end
ATTACK_TIMEOUT=60
POLICY=/etc/vigil/policies/audit.pol
mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null

vigild status 2>&1 | sed 's/^/VIGIL-GUEST: status-at-start: /'

protect=$(vigild protect 2>&1)
protect_rc=$?
echo "$protect" | sed 's/^/VIGIL-GUEST: protect: /'
mark "policy protect rc=$protect_rc"
guarded=no
[ "$protect_rc" = 0 ] && guarded=yes
[ "$guarded" = no ] && mark "!!! GUARD NOT ACTIVE: 'vigild protect' failed: the attacks run against an UNGUARDED kernel"
mark "guard active=$guarded"

last_seq() {
	vigild events --json 2>/dev/null | tail -n1 | sed -n 's/.*"seq": *\([0-9][0-9]*\).*/\1/p'
}

# attack PHASE X: technique X of the attack module (it undoes what landed and prints its VIGIL-ATTACK line).
attack() {
	local phase=$1 t=$2 pid rc polls=0
	mark "events-mark $phase seq=$(last_seq | grep . || echo none)"
	dmesg -c >/dev/null 2>&1
	stty -F /dev/console -tostop 2>/dev/null
	insmod /modules/attack.ko technique="$t" >/tmp/insmod.out 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null && [ "$polls" -lt $((ATTACK_TIMEOUT * 10)) ]; do
		usleep 100000
		polls=$((polls + 1))
	done
	if kill -0 "$pid" 2>/dev/null; then
		rc=stuck
	else
		wait "$pid"
		rc=$?
		rmmod attack 2>/dev/null
	fi
	mark "attack $t insmod rc=$rc $(tr '\n' ' ' </tmp/insmod.out)"
	dmesg | grep -q "VIGIL-ATTACK: technique=$t " || echo "VIGIL-ATTACK: technique=$t landed=no setup-failed: the module printed no report (insmod rc=$rc)"
}

# protect_policy WHEN: `vigild protect --policy`, its words and exit status.
protect_policy() {
	local out rc
	out=$(vigild protect --policy "$POLICY" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/VIGIL-GUEST: protect-policy: /'
	mark "protect --policy $1 rc=$rc"
}

attack attack-i-first i
if [ -f "$POLICY" ]; then
	protect_policy before-lock
	vigild status 2>&1 | grep 'policy' | sed 's/^/VIGIL-GUEST: status-after-handover: /'
	attack attack-i-handed i
else
	mark "no $POLICY in this guest: protect --policy before Lock not tried"
fi
lock=$(vigild lock 2>&1)
mark "lock rc=$? $lock"
[ -f "$POLICY" ] || POLICY=/etc/vigil-scenario   # after Lock the hypervisor refuses before it reads the file
protect_policy after-lock

mark "events-mark end seq=$(last_seq | grep . || echo none)"
events=$(vigild events --json 2>/tmp/events.err)
events_rc=$?
[ -n "$events" ] && echo "$events" | sed 's/^/VIGIL-EVENT: /'
mark "vigild events rc=$events_rc count=$(echo "$events" | grep -c .) $(tr '\n' ' ' </tmp/events.err)"
vigild status 2>&1 | sed 's/^/VIGIL-GUEST: status-at-end: /'
mark "policy scenario done guarded=$guarded"
return 0
