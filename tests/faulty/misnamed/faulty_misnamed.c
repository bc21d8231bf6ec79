/*
 * Defect, in the 2.4 style: exit sets a stop flag, wakes the threads and
 * returns without waiting for them to leave. The threads sleep in
 * msleep_interruptible(), which a wake-up does not end, so they are still in
 * the module's code when it is freed. The threads are named after what they
 * do ("irq/poll-N"), not after the module.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static struct task_struct *tasks[8];
static bool stopping;

static int poll_thread(void *arg)
{
	while (!READ_ONCE(stopping))
		msleep_interruptible(300);
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(poll_thread, (void *)i, "irq/poll-%ld", i);
	return 0;
}

static void __exit faulty_exit(void)
{
	int i;

	WRITE_ONCE(stopping, true);
	for (i = 0; i < nthreads && i < 8; i++)
		wake_up_process(tasks[i]);	/* the defect: no wait for them to exit */
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
