#!/bin/bash
# Where the hypervisor's instructions go in one SVM exit round trip (issue 12): boots the `bench` scenario in QEMU
# (1 CPU, gdbstub on :1234), attaches gdb once the loader says where the image runs, and single-steps WANT CPUID
# exits of the guest's benchmark from vigil_svm_exit to the VMRUN (trace.py), then counts instructions per function
# (summarize.py; --listing: every instruction). Needs gdb and objdump; run `make build guest` first.
# Usage: tools/exit-profile/profile.sh [--listing] [WANT]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
listing=""
if [ "${1:-}" = "--listing" ]; then listing="--listing"; shift; fi
want=${1:-2}
out=$root/out/exit-profile
map=$root/out/efi/vigil-hv.map
image=$root/out/efi/vigil-hv.efi
for tool in gdb objdump; do command -v $tool >/dev/null || { echo "profile: $tool is not installed" >&2; exit 1; }; done
[ -f "$map" ] || { echo "profile: $map is missing: run 'make build guest' first" >&2; exit 1; }
mkdir -p "$out"
preferred=$((0x140000000))
address() { awk -v s="$1" '$2 == s && !found { print $3; found = 1 }' "$map"; }
exit_rva=$(printf '%x' $((0x$(address vigil_svm_exit) - preferred)))
launch=0x$(address vigil_svm_launch_cpu)
vmrun=$(objdump -d --no-show-raw-insn --start-address=$launch --stop-address=$((launch + 0x400)) "$image" | awk '$2 == "vmrun" && !found { sub(":", "", $1); print $1; found = 1 }')
vmrun_rva=$(printf '%x' $((0x$vmrun - preferred)))

dotnet "$root/out/artifacts/bin/Vigil.Tool/release/vigil.dll" run --root "$root" --emulator qemu --scenario bench --cpus 1 --headless \
    --timeout 600 --qemu-arg -s --append "bench_idle=0 bench_scale=1 bench_samples=100000 bench_toggles=2" >"$out/run.txt" 2>&1 &
runner=$!
trap 'kill $runner 2>/dev/null || true' EXIT
base=""
for _ in $(seq 120); do
    base=$(grep -a -m1 -o 'placed at 0x[0-9A-Fa-f]*' "$out/run.txt" | cut -d' ' -f3 || true)
    [ -n "$base" ] && break
    sleep 0.5
done
[ -n "$base" ] || { echo "profile: the loader never said where the image runs (see $out/run.txt)" >&2; exit 1; }
HVBASE=$base EXIT_RVA=$exit_rva VMRUN_RVA=$vmrun_rva WANT=$want EVERY=${EVERY:-2000} OUT="$out/trace.txt" \
    timeout 600 gdb -batch -ex "target remote :1234" -x "$(dirname "$0")/trace.py" >"$out/gdb.txt" 2>&1 || true
wait $runner 2>/dev/null || true
python3 "$(dirname "$0")/summarize.py" "$out/trace.txt" "$map" "$image" $listing
