/*
 * kthread-2.4.c - the kthread library on Linux 2.4.
 *
 * keventd starts the thread (schedule_task), so the thread is keventd's child
 * and inherits keventd's clean context instead of the insmod process's. Start
 * and stop hand-shake on a semaphore. Stopping sets the terminate flag and
 * sends SIGKILL to wake the thread; once it has exited it is a zombie until
 * its parent (keventd) calls waitpid(), which keventd does when it gets
 * SIGCHLD.
 *
 * Who to signal: the thread records its real parent's PID at start. The
 * original example assumed keventd is PID 2, which is false on kernels that
 * start other threads first (O(1)-scheduler backports start per-CPU
 * migration threads, so on SMP keventd is 2 + NR_CPUS): the wrong task gets
 * SIGCHLD and the thread stays a zombie. Build with SEED_PID2=1
 * (-DLAB_SEED_PID2) to get that original behaviour back, so a soak can show
 * the leak.
 */
#include <linux/config.h>
#include <linux/version.h>
#if LINUX_VERSION_CODE >= KERNEL_VERSION(2, 6, 0)
#error "kthread-2.4.c is for Linux 2.4; build kthread-kapi.c for 2.6.22 and later"
#endif
#if defined(MODVERSIONS)
#include <linux/modversions.h>
#endif
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/string.h>
#include <linux/tqueue.h>
#include <asm/semaphore.h>
#include <asm/smplock.h>

#include "kthread.h"


/* Runs in keventd: the new thread becomes keventd's child. */
static void kthread_launch(void *data)
{
	kthread_t *kthread = data;

	kernel_thread((int (*)(void *))kthread->function, kthread, 0);
}

int start_kthread(void (*func)(kthread_t *), kthread_t *kthread, const char *name)
{
	kthread->function = func;
	kthread->terminate = 0;
	strncpy(kthread->name, name, sizeof(kthread->name) - 1);
	kthread->name[sizeof(kthread->name) - 1] = '\0';
	init_waitqueue_head(&kthread->queue);

	/* Locked now; the thread's init_kthread() unlocks it. */
	init_MUTEX_LOCKED(&kthread->startstop_sem);

	kthread->tq.sync = 0;
	INIT_LIST_HEAD(&kthread->tq.list);
	kthread->tq.routine = kthread_launch;
	kthread->tq.data = kthread;
	schedule_task(&kthread->tq);

	down(&kthread->startstop_sem);
	return 0;
}

void stop_kthread(kthread_t *kthread)
{
	pid_t reaper;

	if (kthread->thread == NULL) {
		printk(KERN_WARNING "stop_kthread: %s is not running\n", kthread->name);
		return;
	}
	reaper = kthread->reaper;

	/*
	 * Hold the big kernel lock from the flag change until the thread has
	 * said it is leaving: the thread takes it in exit_kthread() and keeps it
	 * until do_exit(), so once we get it back the thread's code is done.
	 */
	lock_kernel();
	init_MUTEX_LOCKED(&kthread->startstop_sem);
	mb();
	kthread->terminate = 1;
	mb();
	kill_proc(kthread->thread->pid, SIGKILL, 1);
	down(&kthread->startstop_sem);
	unlock_kernel();

	/* The thread is a zombie now: ask its parent to collect it. */
#ifdef LAB_SEED_PID2
	reaper = 2;
#endif
	kill_proc(reaper, SIGCHLD, 1);
}

void init_kthread(kthread_t *kthread)
{
	lock_kernel();
	kthread->thread = current;
	kthread->reaper = current->p_pptr->pid;
	/* Only these signals wake the thread; SIGKILL is the stop request. */
	siginitsetinv(&current->blocked, sigmask(SIGKILL) | sigmask(SIGINT) | sigmask(SIGTERM));
	recalc_sigpending(current);
	strncpy(current->comm, kthread->name, sizeof(current->comm) - 1);
	current->comm[sizeof(current->comm) - 1] = '\0';
	unlock_kernel();

	up(&kthread->startstop_sem);
}

void exit_kthread(kthread_t *kthread)
{
	/* Taken here, released by do_exit() after the thread function returns. */
	lock_kernel();
	kthread->thread = NULL;
	mb();
	up(&kthread->startstop_sem);
}

int kthread_should_end(kthread_t *kthread)
{
	mb();
	return kthread->terminate;
}

void kthread_sleep(kthread_t *kthread, unsigned long ticks)
{
	interruptible_sleep_on_timeout(&kthread->queue, ticks);
}
