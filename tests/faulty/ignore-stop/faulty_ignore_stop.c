/* Defect: the threads never look at kthread_should_stop(), so unloading blocks forever. */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/completion.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);
static struct task_struct *tasks[8];
static DECLARE_COMPLETION(started);	/* each thread has printed its start line */

static int deaf_thread(void *arg)
{
	pr_info("faulty: thread %ld started\n", (long)arg);
	complete(&started);
	for (;;)
		msleep_interruptible(100);	/* the defect: no kthread_should_stop() */
	return 0;
}

static int __init faulty_init(void)
{
	long i;

	for (i = 0; i < nthreads && i < 8; i++)
		tasks[i] = kthread_run(deaf_thread, (void *)i, "faulty thread");
	for (i = 0; i < nthreads && i < 8; i++)
		wait_for_completion(&started);
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
