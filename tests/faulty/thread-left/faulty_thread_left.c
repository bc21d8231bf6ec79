/* Defect: unload stops all threads but the last, which keeps running module code. */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static struct task_struct *tasks[8];

static int worker(void *arg)
{
	while (!kthread_should_stop())
		msleep_interruptible(200);
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(worker, (void *)i, "faulty worker");
	return 0;
}

static void __exit faulty_exit(void)
{
	int i;

	for (i = 0; i < nthreads - 1 && i < 8; i++)	/* the defect: off by one */
		kthread_stop(tasks[i]);
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
