// SPDX-License-Identifier: GPL-2.0
/*
 * The smallest guest module: proves an out-of-tree module built by `vigil guest` against the
 * extracted Debian headers loads and runs in the guest. load_module (tests/guest/init.sh) looks
 * for the line below in dmesg.
 */
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/module.h>

static int __init hello_init(void)
{
	pr_info("vigil-hello: loaded\n");
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("vigil-hello: unloaded\n");
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Vigil test guest: trivial module");
