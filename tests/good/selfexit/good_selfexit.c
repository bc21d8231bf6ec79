/*
 * Well-behaved, another style: each thread does a bounded job (a firmware
 * upload, say) and exits by itself; exit waits for every thread's completion,
 * which kthread_complete_and_exit() signals after the last module instruction.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>

static int nthreads = 3;
module_param(nthreads, int, 0444);
static struct completion done[8];

static int loader(void *arg)
{
	long i = (long)arg;
	int chunk;

	for (chunk = 0; chunk < 4; chunk++)
		msleep(2);
	pr_info("good_selfexit: loader %ld finished\n", i);
	kthread_complete_and_exit(&done[i], 0);
}

static int __init good_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++) {
		init_completion(&done[i]);
		if (IS_ERR(kthread_run(loader, (void *)i, "fw-upload/%ld", i)))
			complete(&done[i]);
	}
	return 0;
}

static void __exit good_exit(void)
{
	int i;

	for (i = 0; i < nthreads && i < 8; i++)
		wait_for_completion(&done[i]);
}

module_init(good_init);
module_exit(good_exit);
MODULE_LICENSE("GPL");
