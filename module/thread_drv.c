/*
 * thread_drv.c - example driver: NTHREADS kernel threads that announce
 * themselves, wake every period to print a line, and all end on unload.
 * The same file builds for Linux 2.4 (Makefile) and for 2.6+ (Kbuild).
 *
 * Parameters: nthreads (1..64, default 5), period_ms (default 1000).
 * Messages (the soak counts them):
 *   thread_mod: thread N started
 *   thread_mod: thread N woke up
 *   thread_mod: thread N stopped
 */
#include <linux/version.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(2, 6, 0)
#include <linux/config.h>
#if defined(MODVERSIONS)
#include <linux/modversions.h>
#endif
#endif
#include <linux/module.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/errno.h>
#include <linux/sched.h>

#include "kthread.h"

#define DRV_NAME "thread_mod"
#define THREAD_NAME "example thread"
#define MAX_THREADS 64

static int nthreads = 5;
static int period_ms = 1000;

#if LINUX_VERSION_CODE < KERNEL_VERSION(2, 6, 0)
MODULE_PARM(nthreads, "i");
MODULE_PARM(period_ms, "i");
#else
#include <linux/moduleparam.h>
module_param(nthreads, int, 0444);
module_param(period_ms, int, 0444);
#endif
MODULE_PARM_DESC(nthreads, "number of kernel threads (1-64, default 5)");
MODULE_PARM_DESC(period_ms, "wake-up period of each thread in ms (default 1000)");

static kthread_t threads[MAX_THREADS];
static int running;

static unsigned long period_ticks(void)
{
	unsigned long t = ((unsigned long)period_ms * HZ + 999) / 1000;

	return t ? t : 1;
}

static void example_thread(kthread_t *kthread)
{
	int id = (int)(long)kthread->arg;

	init_kthread(kthread);
	printk(KERN_INFO DRV_NAME ": thread %d started\n", id);

	for (;;) {
		kthread_sleep(kthread, period_ticks());
		if (kthread_should_end(kthread))
			break;
		printk(KERN_INFO DRV_NAME ": thread %d woke up\n", id);
	}

	printk(KERN_INFO DRV_NAME ": thread %d stopped\n", id);
	exit_kthread(kthread);
}

static void stop_all(void)
{
	while (running > 0)
		stop_kthread(&threads[--running]);
}

static int __init thread_drv_init(void)
{
	int err;

	if (nthreads < 1 || nthreads > MAX_THREADS || period_ms < 1) {
		printk(KERN_ERR DRV_NAME ": bad parameters nthreads=%d period_ms=%d\n",
		       nthreads, period_ms);
		return -EINVAL;
	}
	for (running = 0; running < nthreads; running++) {
		threads[running].arg = (void *)(long)running;
		err = start_kthread(example_thread, &threads[running], THREAD_NAME);
		if (err) {
			printk(KERN_ERR DRV_NAME ": starting thread %d failed: %d\n", running, err);
			stop_all();
			return err;
		}
	}
	return 0;
}

static void __exit thread_drv_exit(void)
{
	stop_all();
}

module_init(thread_drv_init);
module_exit(thread_drv_exit);

MODULE_DESCRIPTION("Example driver with kernel threads, for load/unload soaks");
#ifdef MODULE_LICENSE
MODULE_LICENSE("GPL");
#endif
