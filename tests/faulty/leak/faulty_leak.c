/*
 * Defect: exit frees the descriptor table but not the buffers it points to,
 * so every load leaks 64 buffers of 1 KiB.
 */
#include <linux/module.h>
#include <linux/slab.h>

#define NDESC 64
static void **ring;

static int __init faulty_init(void)
{
	int i;

	ring = kcalloc(NDESC, sizeof(*ring), GFP_KERNEL);
	if (!ring)
		return -ENOMEM;
	for (i = 0; i < NDESC; i++) {
		ring[i] = kmalloc(1024, GFP_KERNEL);
		if (ring[i])
			memset(ring[i], 0x5a, 1024);
	}
	return 0;
}

static void __exit faulty_exit(void)
{
	kfree(ring);	/* the defect: the buffers in ring[] are never freed */
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
