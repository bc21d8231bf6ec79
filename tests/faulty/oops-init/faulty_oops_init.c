/* Defect: init dereferences a NULL pointer: an oops while loading. */
#include <linux/module.h>

static int nthreads = 2;
module_param(nthreads, int, 0444);

struct widget {
	int count;
};

static struct widget *find_widget(void)
{
	return NULL;	/* the defect: callers assume a widget */
}

static int __init faulty_init(void)
{
	struct widget *w = find_widget();

	WRITE_ONCE(w->count, nthreads);
	return 0;
}

static void __exit faulty_exit(void)
{
}

module_init(faulty_init);
module_exit(faulty_exit);
MODULE_LICENSE("GPL");
