/*
 * Well-behaved, no threads of its own: a delayed work item on the module's own
 * workqueue polls every 20 ms. WQ_MEM_RECLAIM gives the workqueue a rescuer
 * thread (named after the workqueue), which destroy_workqueue() stops.
 */
#include <linux/module.h>
#include <linux/workqueue.h>

static struct workqueue_struct *wq;
static unsigned long polls;

static void poll_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(poll_work, poll_fn);

static void poll_fn(struct work_struct *work)
{
	polls++;
	queue_delayed_work(wq, &poll_work, msecs_to_jiffies(20));
}

static int __init good_init(void)
{
	wq = alloc_workqueue("good_poll_wq", WQ_MEM_RECLAIM, 0);
	if (!wq)
		return -ENOMEM;
	queue_delayed_work(wq, &poll_work, 0);
	return 0;
}

static void __exit good_exit(void)
{
	cancel_delayed_work_sync(&poll_work);
	destroy_workqueue(wq);
	pr_info("good_workqueue: %lu polls\n", polls);
}

module_init(good_init);
module_exit(good_exit);
MODULE_LICENSE("GPL");
