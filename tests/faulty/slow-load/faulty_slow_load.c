/* Defect: init waits for a device that never answers before giving up: a slow load. */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static int probe_ms = 1500;
module_param(probe_ms, int, 0444);
static struct task_struct *tasks[8];

static int worker(void *arg)
{
	while (!kthread_should_stop())
		msleep_interruptible(100);
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	msleep(probe_ms);	/* the defect: a blocking probe in init */
	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(worker, (void *)i, "faulty worker");
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
