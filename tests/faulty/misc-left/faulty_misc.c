/*
 * Defect: a misc device registered in init; exit deregisters it only when the
 * device was opened since the load (the deregistration sits in the wrong
 * branch), so a load nobody opened leaves /dev/ctlpanel and minor registered.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>

static bool opened;

static int panel_open(struct inode *inode, struct file *f)
{
	opened = true;
	return 0;
}

static const struct file_operations panel_fops = {
	.owner = THIS_MODULE,
	.open = panel_open,
};

static struct miscdevice panel = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "ctlpanel",
	.fops = &panel_fops,
};

static int __init panel_init(void)
{
	return misc_register(&panel);
}

static void __exit panel_exit(void)
{
	if (opened)
		misc_deregister(&panel);
}

module_init(panel_init);
module_exit(panel_exit);
MODULE_LICENSE("GPL");
