/*
 * Defect: four workers share one request queue (a list and its length) with no
 * lock. Each queues a request it allocated, then takes the oldest one off the
 * queue and frees it. On one CPU that is safe: a worker gives the CPU up only
 * in kmalloc() or in its sleep, never between touching the list and finishing
 * with it. With two CPUs at once, two workers can take the same request: the
 * second list_del() follows the poison the first left, or the request is freed
 * twice, and the queue's pointers end up in freed memory.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/slab.h>

#define WORKERS 4
#define BATCH 64

struct request {
	struct list_head node;
	int from;
	unsigned long seq;
};

static LIST_HEAD(queue);	/* the defect: nothing serialises it */
static unsigned long queued;
static struct task_struct *workers[WORKERS];

static int worker(void *arg)
{
	int me = (long)arg;
	unsigned long seq = 0;
	struct request *req, *old;
	int i;

	while (!kthread_should_stop()) {
		for (i = 0; i < BATCH; i++) {
			req = kmalloc(sizeof(*req), GFP_KERNEL);
			if (!req)
				break;
			req->from = me;
			req->seq = seq++;
			list_add_tail(&req->node, &queue);
			queued++;
			old = list_first_entry(&queue, struct request, node);
			list_del(&old->node);
			queued--;
			kfree(old);
		}
		usleep_range(500, 1000);
	}
	return 0;
}

static int __init race_init(void)
{
	long i;

	for (i = 0; i < WORKERS; i++) {
		workers[i] = kthread_run(worker, (void *)i, "qworker/%ld", i);
		if (IS_ERR(workers[i])) {
			while (--i >= 0)
				kthread_stop(workers[i]);
			return -ENOMEM;
		}
	}
	return 0;
}

static void __exit race_exit(void)
{
	struct request *req, *next;
	int i;

	for (i = 0; i < WORKERS; i++)
		kthread_stop(workers[i]);
	list_for_each_entry_safe(req, next, &queue, node) {
		list_del(&req->node);
		kfree(req);
	}
	queued = 0;
}

module_init(race_init);
module_exit(race_exit);
MODULE_LICENSE("GPL");
