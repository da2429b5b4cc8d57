// SPDX-License-Identifier: GPL-2.0
/*
 * hvpeek: an attacker's first move against a hypervisor — read its memory. Given the physical
 * range Vigil reserved (`vigild status` prints it), maps pages of it and copies them with
 * copy_from_kernel_nofault, so a fault the hypervisor injects is survived and counted. Reports
 * how many bytes were not zero and whether anything of the hypervisor's content showed: the PE
 * header at the start of its image ("MZ" ... "PE\0\0") or its launch parameters ("VIGILLNC").
 * The test expects: nothing of the content.
 *   insmod hvpeek.ko base=0x... pages=N
 */
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

static unsigned long base;
module_param(base, ulong, 0444);
MODULE_PARM_DESC(base, "physical address of the hypervisor's reservation");
static unsigned int pages = 64;
module_param(pages, uint, 0444);
MODULE_PARM_DESC(pages, "pages to read from base");

static int __init hvpeek_init(void)
{
	unsigned int i, mapped = 0, faults = 0, nonzero_pages = 0;
	unsigned long nonzero = 0;
	bool mz = false, launch = false;
	u8 *buffer = kmalloc(PAGE_SIZE, GFP_KERNEL);

	if (!buffer)
		return -ENOMEM;
	for (i = 0; i < pages; i++) {
		unsigned long pa = base + (unsigned long)i * PAGE_SIZE;
		void *va = memremap(pa, PAGE_SIZE, MEMREMAP_WB);
		unsigned int j, page_nonzero = 0;

		if (!va)
			continue;
		mapped++;
		if (copy_from_kernel_nofault(buffer, va, PAGE_SIZE)) {
			faults++;
			memunmap(va);
			continue;
		}
		memunmap(va);
		for (j = 0; j < PAGE_SIZE; j++)
			if (buffer[j] != 0 && buffer[j] != 0xff)
				page_nonzero++;
		nonzero += page_nonzero;
		if (page_nonzero)
			nonzero_pages++;
		if (i == 0 && buffer[0] == 'M' && buffer[1] == 'Z')
			mz = true;
		for (j = 0; j + 8 <= PAGE_SIZE; j += 8)
			if (memcmp(buffer + j, "VIGILLNC", 8) == 0)
				launch = true;
	}
	kfree(buffer);
	pr_info("vigil-hvpeek: loaded\n");
	pr_info("vigil-hvpeek: base=0x%lx pages=%u mapped=%u faults=%u nonzero_pages=%u nonzero_bytes=%lu pe_header=%s launch_parameters=%s\n",
		base, pages, mapped, faults, nonzero_pages, nonzero, mz ? "SEEN" : "hidden", launch ? "SEEN" : "hidden");
	pr_info("vigil-hvpeek: verdict %s\n", (mz || launch || nonzero) ? "LEAKED" : "nothing-readable");
	return 0;
}

static void __exit hvpeek_exit(void)
{
}

module_init(hvpeek_init);
module_exit(hvpeek_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Vigil test guest: try to read the hypervisor's physical memory");
