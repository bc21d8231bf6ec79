/*
 * Well-behaved, though its load always fails: init starts its poll thread and
 * registers a misc device, finds no card, and undoes both before returning
 * -ENODEV. The soak fails on the load itself and must name nothing left behind.
 */
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pci.h>

static struct task_struct *poller;
static const struct file_operations card_fops = { .owner = THIS_MODULE };
static struct miscdevice card_dev = {
	.minor = MISC_DYNAMIC_MINOR, .name = "rtlcard", .fops = &card_fops,
};

static int poll_card(void *arg)
{
	while (!kthread_should_stop())
		msleep_interruptible(2000);
	return 0;
}

static int __init card_init(void)
{
	struct pci_dev *pdev;
	int err;

	poller = kthread_run(poll_card, NULL, "rtl-poll");
	if (IS_ERR(poller))
		return PTR_ERR(poller);
	err = misc_register(&card_dev);
	if (err)
		goto stop;
	pdev = pci_get_device(PCI_VENDOR_ID_REALTEK, 0x8139, NULL);
	if (pdev) {
		pci_dev_put(pdev);
		return 0;
	}
	err = -ENODEV;
	misc_deregister(&card_dev);
stop:
	kthread_stop(poller);
	return err;
}

static void __exit card_exit(void)
{
	misc_deregister(&card_dev);
	kthread_stop(poller);
}

module_init(card_init);
module_exit(card_exit);
MODULE_LICENSE("GPL");
