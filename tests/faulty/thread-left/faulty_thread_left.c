/* Defect: unload stops all threads but the last, which keeps running module code. */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/completion.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static struct task_struct *tasks[8];
static DECLARE_COMPLETION(started);	/* each thread has printed its start line */

static int worker(void *arg)
{
	pr_info("faulty: thread %ld started\n", (long)arg);
	complete(&started);
	while (!kthread_should_stop())
		msleep_interruptible(200);
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(worker, (void *)i, "faulty thread");
	for (i = 0; i < nthreads && i < 8; i++)
		wait_for_completion(&started);
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
