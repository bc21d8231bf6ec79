/*
 * kthread.h - a small library for module-owned kernel threads.
 *
 * One interface, two implementations chosen by the kernel the module is
 * built for:
 *   kthread-2.4.c  Linux 2.4: the thread is launched by keventd through a
 *                  task queue, the creator and the thread hand-shake with a
 *                  semaphore, stopping sets a flag and sends SIGKILL, and the
 *                  zombie is reaped by signalling keventd with SIGCHLD.
 *   kthread-kapi.c Linux 2.6+: kthreadd creates the thread (kthread_run),
 *                  kthread_stop() wakes it and waits until it has returned.
 *
 * Usage: the creator calls start_kthread(); the thread function calls
 * init_kthread() first and exit_kthread() last, and returns when
 * kthread_should_end() says so; the remover calls stop_kthread().
 */
#ifndef LAB_KTHREAD_H
#define LAB_KTHREAD_H

#include <linux/version.h>
#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/wait.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(2, 6, 0)
#include <linux/tqueue.h>
#include <asm/semaphore.h>
#else
#include <linux/completion.h>
#endif

#define KTHREAD_NAME_LEN 16	/* task comm: 15 characters and the NUL */

typedef struct kthread_struct {
	/* Set by start_kthread(), read by everyone. */
	struct task_struct *thread;
	void (*function)(struct kthread_struct *kthread);
	char name[KTHREAD_NAME_LEN];
	void *arg;		/* the creator's data for the thread */

	/* The thread sleeps on this queue; stop_kthread() wakes it. */
	wait_queue_head_t queue;
	/* Set to ask the thread to end; the thread checks it after every wake-up. */
	volatile int terminate;

	/* private */
#if LINUX_VERSION_CODE < KERNEL_VERSION(2, 6, 0)
	struct tq_struct tq;		/* keventd launches the thread from here */
	struct semaphore startstop_sem;	/* up() by the thread on start and on exit */
	pid_t reaper;			/* the thread's parent: it must reap the zombie */
#else
	struct completion started;	/* the thread has run init_kthread() */
#endif
} kthread_t;

/* Creator: start func as a kernel thread named name; returns when it runs. 0 or -errno. */
int start_kthread(void (*func)(kthread_t *), kthread_t *kthread, const char *name);

/* Remover: ask the thread to end and wait until it has. */
void stop_kthread(kthread_t *kthread);

/* The thread, first thing: take the name, set the signal mask, tell the creator. */
void init_kthread(kthread_t *kthread);

/* The thread, last thing before returning. */
void exit_kthread(kthread_t *kthread);

/* The thread: true once it has been asked to end. */
int kthread_should_end(kthread_t *kthread);

/* The thread: sleep up to ticks jiffies, or until asked to end. */
void kthread_sleep(kthread_t *kthread, unsigned long ticks);

#endif /* LAB_KTHREAD_H */
