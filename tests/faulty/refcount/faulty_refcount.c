/*
 * Defect: the module pins itself while its setup work is pending (as drivers
 * do around deferred work) and the work's completion path forgets the
 * matching module_put(), so the module can never be unloaded.
 */
#include <linux/module.h>
#include <linux/workqueue.h>

static void setup_fn(struct work_struct *work)
{
	pr_info("faulty: deferred setup done\n");
	/* the defect: no module_put(THIS_MODULE) here */
}
static DECLARE_WORK(setup_work, setup_fn);

static int __init faulty_init(void)
{
	__module_get(THIS_MODULE);
	schedule_work(&setup_work);
	return 0;
}

static void __exit faulty_exit(void)
{
	flush_work(&setup_work);
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
