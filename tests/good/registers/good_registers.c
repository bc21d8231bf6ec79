/*
 * Well-behaved: registers one of each kind the soak checks (a char device with
 * a dynamic major, a device class with a device in it, a misc device, a /proc
 * entry, a filesystem type) and unregisters each in exit, in reverse order.
 */
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/version.h>

static int major;
static struct class *cls;
static struct device *dev;
static struct proc_dir_entry *proc;
static const struct file_operations fops = { .owner = THIS_MODULE };
static struct miscdevice misc = { .minor = MISC_DYNAMIC_MINOR, .name = "goodmisc", .fops = &fops };

static int show(struct seq_file *m, void *v)
{
	seq_puts(m, "ok\n");
	return 0;
}

static struct dentry *mount_nothing(struct file_system_type *t, int flags, const char *dev_name,
				    void *data)
{
	return ERR_PTR(-ENODEV);
}

static struct file_system_type fs = {
	.owner = THIS_MODULE, .name = "goodfs", .mount = mount_nothing, .kill_sb = kill_anon_super,
};

static int __init good_init(void)
{
	int err;

	major = register_chrdev(0, "goodchr", &fops);
	if (major < 0)
		return major;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	cls = class_create("goodclass");
#else
	cls = class_create(THIS_MODULE, "goodclass");
#endif
	err = PTR_ERR_OR_ZERO(cls);
	if (err)
		goto chr;
	dev = device_create(cls, NULL, MKDEV(major, 0), NULL, "good0");
	err = PTR_ERR_OR_ZERO(dev);
	if (err)
		goto class;
	err = misc_register(&misc);
	if (err)
		goto device;
	proc = proc_create_single("goodproc", 0444, NULL, show);
	if (!proc) {
		err = -ENOMEM;
		goto misc;
	}
	err = register_filesystem(&fs);
	if (err)
		goto proc;
	return 0;
proc:
	proc_remove(proc);
misc:
	misc_deregister(&misc);
device:
	device_destroy(cls, MKDEV(major, 0));
class:
	class_destroy(cls);
chr:
	unregister_chrdev(major, "goodchr");
	return err;
}

static void __exit good_exit(void)
{
	unregister_filesystem(&fs);
	proc_remove(proc);
	misc_deregister(&misc);
	device_destroy(cls, MKDEV(major, 0));
	class_destroy(cls);
	unregister_chrdev(major, "goodchr");
}

module_init(good_init);
module_exit(good_exit);
MODULE_LICENSE("GPL");
