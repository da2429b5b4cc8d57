# gdb (Python) script: traces SVM exit round trips of Vigil's hypervisor under QEMU's gdbstub, from the entry of
# vigil_svm_exit to the VMRUN that resumes the guest, one `stepi` at a time (profile.sh runs it; see README.md).
# Environment: HVBASE (where the image runs: "hypervisor image placed at"), EXIT_RVA and VMRUN_RVA (from the map and
# the disassembly), CODE (SVM exit code, default 0x72 = CPUID), WANT (traces), EVERY (take every n-th matching exit),
# OUT (the trace file). Only exits from CPL 3 are taken (a user program's CPUID, not the kernel's).
import os
import gdb

base = int(os.environ["HVBASE"], 16)
start = base + int(os.environ["EXIT_RVA"], 16)
vmrun = base + int(os.environ["VMRUN_RVA"], 16)
code_wanted = int(os.environ.get("CODE", "0x72"), 0)
want = int(os.environ.get("WANT", "3"))
every = int(os.environ.get("EVERY", "1000"))
out = open(os.environ["OUT"], "w")

gdb.execute("set pagination off")
gdb.execute("hbreak *0x%x" % start)
inferior = gdb.selected_inferior()


def qword(address):
    return int.from_bytes(bytes(inferior.read_memory(address, 8)), "little")


seen = 0
taken = 0
while taken < want:
    gdb.execute("continue", to_string=True)
    # vigil_svm_exit(SvmHostFrame* frame in RCX, SvmCpu* cpu in RDX): SvmCpu.Vmcb at +8 (identity-mapped).
    vmcb = qword((int(gdb.parse_and_eval("$rdx")) & 0xFFFFFFFFFFFFFFFF) + 8)
    exit_code = qword(vmcb + 0x70)
    cpl = bytes(inferior.read_memory(vmcb + 0x400 + 0xCB, 1))[0]
    if exit_code != code_wanted or cpl != 3:
        continue
    seen += 1
    if seen % every != 0:
        continue
    pcs = []
    while True:
        pc = int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF
        if len(pcs) == 1 and pc == start:
            gdb.execute("stepi", to_string=True)   # the first step after the breakpoint can report it again
            continue
        pcs.append(pc - base)
        if pc == vmrun or len(pcs) > 100000:
            break
        gdb.execute("stepi", to_string=True)
    out.write("TRACE %d %d\n" % (taken, len(pcs)))
    out.write("".join("%x\n" % rva for rva in pcs))
    out.flush()
    taken += 1
out.close()
gdb.execute("kill")
