/*
 * kthread-kapi.c - the kthread library on Linux 2.6.22 and later.
 *
 * kthreadd creates the thread, so it inherits nothing from the module's
 * caller (what the 2.4 version gets by going through keventd), and kthreadd
 * reaps it: no zombie is left for anybody to collect. kthread_stop() wakes the
 * thread and waits until its function has returned.
 */
#include <linux/version.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(2, 6, 22)
#error "kthread-kapi.c needs Linux 2.6.22 or later; build kthread-2.4.c for 2.4"
#endif

#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/sched/task.h>
#include <linux/string.h>

#include "kthread.h"

static int kthread_trampoline(void *data)
{
	kthread_t *kthread = data;

	kthread->function(kthread);
	return 0;
}

int start_kthread(void (*func)(kthread_t *), kthread_t *kthread, const char *name)
{
	struct task_struct *task;

	kthread->function = func;
	kthread->terminate = 0;
	strscpy(kthread->name, name, sizeof(kthread->name));
	init_waitqueue_head(&kthread->queue);
	init_completion(&kthread->started);

	task = kthread_create(kthread_trampoline, kthread, "%s", kthread->name);
	if (IS_ERR(task))
		return PTR_ERR(task);
	/*
	 * Hold the task: the thread may return (and exit) before stop_kthread()
	 * calls kthread_stop(), which must still find its task_struct.
	 */
	get_task_struct(task);
	kthread->thread = task;
	wake_up_process(task);
	wait_for_completion(&kthread->started);
	return 0;
}

void stop_kthread(kthread_t *kthread)
{
	struct task_struct *task = kthread->thread;

	if (!task) {
		pr_warn("stop_kthread: %s is not running\n", kthread->name);
		return;
	}
	WRITE_ONCE(kthread->terminate, 1);
	wake_up_interruptible(&kthread->queue);
	kthread_stop(task);	/* returns once the thread function has returned */
	put_task_struct(task);
	kthread->thread = NULL;
}

void init_kthread(kthread_t *kthread)
{
	/* Name and signal mask are set by kthreadd; only the hand-shake is left. */
	complete(&kthread->started);
}

void exit_kthread(kthread_t *kthread)
{
	/* Nothing to release: kthread_stop() collects the thread. */
}

int kthread_should_end(kthread_t *kthread)
{
	return READ_ONCE(kthread->terminate) || kthread_should_stop();
}

void kthread_sleep(kthread_t *kthread, unsigned long ticks)
{
	wait_event_interruptible_timeout(kthread->queue, kthread_should_end(kthread), ticks);
}
