/*
 * Defect: the poller waits for its device with a ten-minute timeout and never
 * looks at kthread_should_stop(), so kthread_stop() in exit (and with it
 * rmmod) blocks until the timeout ends.
 */
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/wait.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static struct task_struct *tasks[8];
static DECLARE_WAIT_QUEUE_HEAD(irq_wait);
static bool irq_seen;

static int poller(void *arg)
{
	pr_info("faulty: poller %ld waiting for the device\n", (long)arg);
	/* the defect: no kthread_should_stop() in the condition */
	wait_event_timeout(irq_wait, READ_ONCE(irq_seen), 600 * HZ);
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(poller, (void *)i, "faulty poller");
	return 0;
}

static void __exit faulty_exit(void)
{
	int i;

	for (i = 0; i < nthreads && i < 8; i++)
		kthread_stop(tasks[i]);
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
