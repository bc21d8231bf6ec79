/*
 * Defect: init registers a character device with a dynamic major; exit frees
 * the buffer behind it and forgets unregister_chrdev(). Every load takes one
 * more of the kernel's dynamic majors until there are none left.
 */
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/slab.h>

static int major;
static char *buffer;

static ssize_t sample_read(struct file *f, char __user *to, size_t n, loff_t *off)
{
	return simple_read_from_buffer(to, n, off, buffer, 64);
}

static const struct file_operations sample_fops = {
	.owner = THIS_MODULE,
	.read = sample_read,
};

static int __init sample_init(void)
{
	buffer = kzalloc(64, GFP_KERNEL);
	if (!buffer)
		return -ENOMEM;
	major = register_chrdev(0, "sampler", &sample_fops);
	if (major < 0) {
		kfree(buffer);
		return major;
	}
	return 0;
}

static void __exit sample_exit(void)
{
	kfree(buffer);	/* the defect: no unregister_chrdev(major, "sampler") */
}

module_init(sample_init);
module_exit(sample_exit);
MODULE_LICENSE("GPL");
