/*
 * Defect: init starts the poll thread first, then looks for its card (a
 * RealTek 8139, which no lab guest has) and returns -ENODEV without stopping
 * the thread. The kernel frees the module's memory; the thread sleeps on in it.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/pci.h>

static struct task_struct *poller;

static int poll_card(void *arg)
{
	while (!kthread_should_stop())
		msleep_interruptible(2000);
	return 0;
}

static int __init card_init(void)
{
	struct pci_dev *pdev;

	poller = kthread_run(poll_card, NULL, "rtl-poll");
	if (IS_ERR(poller))
		return PTR_ERR(poller);
	pdev = pci_get_device(PCI_VENDOR_ID_REALTEK, 0x8139, NULL);
	if (!pdev)
		return -ENODEV;	/* the defect: poller keeps running */
	pci_dev_put(pdev);
	return 0;
}

static void __exit card_exit(void)
{
	kthread_stop(poller);
}

module_init(card_init);
module_exit(card_exit);
MODULE_LICENSE("GPL");
