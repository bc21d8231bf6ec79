/*
 * soak-agent: runs inside a lab guest and loads/unloads one kernel module N
 * times, checking after each cycle that the module cleaned up after itself.
 * It makes the syscalls itself and reads /proc, /sys and /dev/kmsg directly,
 * and prints one JSON line per cycle on stdout (flushed), so the host gets
 * every finished cycle even if the guest dies at the next one.
 *
 * It needs no knowledge of the module: every kernel thread that appears while
 * the module is loaded (a new task with PF_KTHREAD, whatever its name) belongs
 * to the cycle, except the workqueue core's shared pool workers ("kworker/"),
 * which the kernel creates and reaps on its own schedule. The module stays
 * loaded until each of its threads has run (a context switch after the one
 * every kthread makes when it is created, or CPU time) and at least the
 * minimum hold has passed, so that unloading exercises the threads' real stop
 * path. After unload each of them must be gone.
 *
 * delete_module() runs while a watchdog thread watches the clock: an unload
 * still blocked past its limit is reported at once (within a quarter of the
 * limit; "unload-blocked"), with the
 * module's /proc/modules line and the blocked task's kernel stack
 * (/proc/PID/stack, or the kernel's sysrq-w dump where there is no stack file).
 *
 * The agent reports facts and judges nothing: the host judges every cycle (one
 * set of checks and kernel-log patterns, lab/soak/checks.py). So that a failed
 * cycle ends the soak, the host answers each cycle record with one byte on the
 * agent's standard input, 'c' to go on or 's' to stop, and the agent starts
 * cycle N only once it has the answers for cycles up to N-2: the host's
 * judging overlaps the next cycle instead of adding a round trip to each, and
 * a failure stops the soak after at most the one cycle already under way. End
 * of file on standard input (the host gone) stops it too. With -k (keep going)
 * or -b the agent reads no answers.
 *
 * Usage: soak-agent -m MODULE.ko -n NAME [-c CYCLES] [-p "k=v ..."]
 *                   [-H HOLD_MS] [-W HOLD_LIMIT_MS] [-U UNLOAD_LIMIT_MS]
 *                   [-t THREAD_COMM -T THREADS] [-s START_REGEX] [-w WAKE_REGEX]
 *                   [-D DWELL_EVERY -S DWELL_MS] [-b] [-k]
 *   -b  bare: load and unload only, no checks (for benchmarks)
 *   -k  run every cycle, reading no answers from the host (default: the host's
 *       answer to each cycle decides whether the soak goes on)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PF_EXITING 0x00000004	/* include/linux/sched.h */
#define PF_KTHREAD 0x00200000
#define MAX_KLOG 16		/* kernel log lines of warning level or worse, per cycle */
#define LOG_WARNING_LEVEL 4
#define MAX_WAKES 4096
#define MAX_THREADS 64
#define MAX_TASKS 8192
#define MAX_EVIDENCE 48
#define MAX_REGISTERED 16	/* registrations left behind, per cycle */
#define MAX_ADDED 256		/* devices a cycle added and has not yet removed */

struct opts {
	const char *path, *name, *comm, *params, *start_re, *wake_re;
	long cycles, threads, dwell_every, dwell_ms, hold_ms, hold_limit_ms, unload_limit_ms;
	int bare, keep_going;
};

struct task {
	int pid;
	int kthread;
	unsigned long long start;	/* clock ticks after boot: tells reused PIDs apart */
};

struct kthread {
	struct task t;
	char comm[32];
	int ran, exited, left, pool;
};

struct cycle {
	long n;
	long long t_us, load_us, threads_us, unload_us, check_us;
	int nthreads, npool, named, named_after, zombies, procs, starts, wakes, module_listed, refcnt;
	struct kthread threads[MAX_THREADS];
	long mem_avail_kb, slab_kb;
	int nklog, klog_more;
	char klog[MAX_KLOG][256];
	int nregistered, registered_more;
	char registered[MAX_REGISTERED][256];
	int nwake_ts;
	int wake_id[MAX_WAKES];
	long long wake_ts[MAX_WAKES];
	char err[256];
};

/* Every task at the last full scan of /proc, sorted by PID. */
static struct task known[MAX_TASKS], prev_known[MAX_TASKS];
static int nknown, pid_max = 32768;
/* The last PID handed out when the last full scan began (see last_pid()). */
static int scan_cursor;

/*
 * Zombies at the last full scan. A child its parent reaps within ZOMBIE_GRACE_US
 * is an ordinary exit (an SSH session ending while the soak runs, say); one left
 * unreaped that long is what the zombie check is about.
 */
#define MAX_ZOMBIES 256
#define ZOMBIE_GRACE_US 2000000LL
struct zombie {
	struct task t;
	long long since_us;	/* first seen as a zombie */
	int before_soak;	/* already there at the baseline */
};
static struct zombie zombie[MAX_ZOMBIES], prev_zombie[MAX_ZOMBIES];
static int nzombie;
static long long young_zombie_since;	/* the newest new zombie still within its grace, or 0 */

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

/* The non-numeric names at the top of /proc at the last full scan, each between
 * newlines, in readdir order: what the registration check compares. */
#define PROC_NAMES_SIZE 16384
static char proc_names_now[PROC_NAMES_SIZE] = "\n";
static size_t proc_names_len = 1;

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_lines(FILE *f, const char *key, char lines[][256], int n)
{
	int i;

	fprintf(f, ",\"%s\":[", key);
	for (i = 0; i < n; i++) {
		if (i)
			fputc(',', f);
		json_str(f, lines[i]);
	}
	fputc(']', f);
}

/* Read a small file into buf (NUL-terminated); returns its length or -1. */
static ssize_t slurp(int dirfd, const char *path, char *buf, size_t size)
{
	int fd = openat(dirfd, path, O_RDONLY);
	ssize_t len, got = 0;

	if (fd < 0)
		return -1;
	while ((size_t)got < size - 1 && (len = read(fd, buf + got, size - 1 - got)) > 0)
		got += len;
	close(fd);
	buf[got] = '\0';
	return got;
}

struct pstat {
	char comm[32];
	char state;
	unsigned long flags;
	unsigned long long utime, stime, start;
};

/* /proc/PID/stat: comm, state, flags, CPU time and start time. */
static int read_stat(int procfd, int pid, struct pstat *ps)
{
	char path[32], buf[1024], *open_paren, *close_paren, *p;
	int field;
	size_t n;

	snprintf(path, sizeof(path), "%d/stat", pid);
	if (slurp(procfd, path, buf, sizeof(buf)) <= 0)
		return -1;
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren[1] != ' ')
		return -1;
	n = close_paren - open_paren - 1;
	if (n >= sizeof(ps->comm))
		n = sizeof(ps->comm) - 1;
	memcpy(ps->comm, open_paren + 1, n);
	ps->comm[n] = '\0';
	ps->state = close_paren[2];
	/* Fields after the comm, counted from 3 (state). */
	p = close_paren + 2;
	for (field = 3; field <= 22 && p; field++) {
		switch (field) {
		case 9: ps->flags = strtoul(p, NULL, 10); break;
		case 14: ps->utime = strtoull(p, NULL, 10); break;
		case 15: ps->stime = strtoull(p, NULL, 10); break;
		case 22: ps->start = strtoull(p, NULL, 10); break;
		}
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	return field > 22 ? 0 : -1;
}

/* Voluntary plus involuntary context switches, from /proc/PID/status. */
static long context_switches(int procfd, int pid)
{
	char path[32], buf[2048], *p;
	long total = 0;

	snprintf(path, sizeof(path), "%d/status", pid);
	if (slurp(procfd, path, buf, sizeof(buf)) <= 0)
		return -1;
	if ((p = strstr(buf, "\nvoluntary_ctxt_switches:")))
		total += atol(p + 25);
	if ((p = strstr(buf, "\nnonvoluntary_ctxt_switches:")))
		total += atol(p + 28);
	return total;
}

static int task_cmp(const void *a, const void *b)
{
	return ((const struct task *)a)->pid - ((const struct task *)b)->pid;
}

static int is_known(int pid, unsigned long long start)
{
	struct task key = { .pid = pid }, *hit;

	hit = bsearch(&key, known, nknown, sizeof(known[0]), task_cmp);
	return hit && hit->start == start;
}

static int is_pool_worker(const char *comm)
{
	return strncmp(comm, "kworker/", 8) == 0;
}

/*
 * The last PID the kernel handed out: the last field of /proc/loadavg. PIDs are
 * handed out in rising order and wrap around past pid_max (to 300, below which
 * only boot-time tasks live), so the PIDs given out since an earlier reading
 * form one range on that circle. A long soak wraps it: 32768 PIDs are about
 * 6500 cycles of a module that starts five threads.
 */
static int last_pid(void)
{
	char buf[128], *p;

	if (slurp(AT_FDCWD, "/proc/loadavg", buf, sizeof(buf)) <= 0 || !(p = strrchr(buf, ' ')))
		return -1;
	return atoi(p + 1);
}

/* Whether PID was handed out after FROM, up to TO (both last_pid() readings). */
static int pid_handed_out(int pid, int from, int to)
{
	if (from < 0 || to < 0)
		return 1;	/* unknown: treat every task as possibly new */
	if (from <= to)
		return pid > from && pid <= to;
	return pid > from || pid <= to;
}

/*
 * Full scan of /proc: refresh the known tasks, count processes and zombies,
 * and count tasks named like the module's threads (lab.yaml). Kernel threads
 * seen before are not read again: they never turn into zombies (kthreadd
 * reaps them) and a guest runs few other tasks, so this reads a handful of
 * files instead of every task's. A PID handed out since the last full scan
 * may belong to a new task even if a kthread had it then: such PIDs are read.
 */
/*
 * Note a zombie seen by this scan; returns 1 if it came after the baseline and
 * has stayed unreaped past the grace.
 */
static int lasting_zombie(int pid, unsigned long long start, int nprev, int baseline,
			  long long now)
{
	struct zombie *z;
	int i;

	if (nzombie >= MAX_ZOMBIES)
		return !baseline;
	z = &zombie[nzombie++];
	*z = (struct zombie){ .t = { .pid = pid, .start = start }, .since_us = now,
			      .before_soak = baseline };
	for (i = 0; i < nprev; i++)
		if (prev_zombie[i].t.pid == pid && prev_zombie[i].t.start == start) {
			z->since_us = prev_zombie[i].since_us;
			z->before_soak = prev_zombie[i].before_soak;
		}
	if (z->before_soak)
		return 0;
	if (now - z->since_us >= ZOMBIE_GRACE_US)
		return 1;
	if (z->since_us > young_zombie_since)
		young_zombie_since = z->since_us;
	return 0;
}

/* ZOMBIES counts the new zombies that stayed (all of them at the BASELINE scan). */
static void full_scan(int procfd, const char *comm, int *named, int *zombies, int *procs,
		      int baseline)
{
	DIR *d = fdopendir(dup(procfd));
	struct dirent *e;
	struct pstat ps;
	int nprev = nknown, from = scan_cursor, to = last_pid(), nprev_zombie = nzombie;
	long long now = now_us();

	*zombies = *procs = 0;
	if (named)
		*named = 0;
	memcpy(prev_known, known, nprev * sizeof(known[0]));
	memcpy(prev_zombie, zombie, nprev_zombie * sizeof(zombie[0]));
	nknown = nzombie = 0;
	young_zombie_since = 0;
	proc_names_len = 1;
	proc_names_now[1] = '\0';
	if (!d)
		return;
	rewinddir(d);
	while ((e = readdir(d))) {
		struct task key, *seen;
		int pid;

		if (!isdigit((unsigned char)e->d_name[0])) {
			size_t n = strlen(e->d_name);

			if (e->d_name[0] != '.' && proc_names_len + n + 2 < PROC_NAMES_SIZE) {
				memcpy(proc_names_now + proc_names_len, e->d_name, n);
				proc_names_len += n;
				proc_names_now[proc_names_len++] = '\n';
				proc_names_now[proc_names_len] = '\0';
			}
			continue;
		}
		key.pid = pid = atoi(e->d_name);
		seen = pid_handed_out(pid, from, to) ? NULL :
			bsearch(&key, prev_known, nprev, sizeof(key), task_cmp);
		if (seen && seen->kthread) {
			(*procs)++;
			if (nknown < MAX_TASKS)
				known[nknown++] = *seen;
			continue;
		}
		if (read_stat(procfd, pid, &ps) < 0)
			continue;
		(*procs)++;
		if (ps.state == 'Z' && (lasting_zombie(pid, ps.start, nprev_zombie, baseline, now) ||
					baseline))
			(*zombies)++;
		/* A thread on its way out (do_exit has begun, or it is dead and not yet
		 * released) is past the module's code: kthread_stop() returns before the
		 * task leaves /proc. Only a live one is "still there", as in threads_left(). */
		if (named && comm && strcmp(ps.comm, comm) == 0 && ps.state != 'Z' &&
		    ps.state != 'X' && !(ps.flags & PF_EXITING))
			(*named)++;
		if (nknown < MAX_TASKS) {
			known[nknown].pid = pid;
			known[nknown].kthread = !!(ps.flags & PF_KTHREAD);
			known[nknown++].start = ps.start;
		}
	}
	closedir(d);
	qsort(known, nknown, sizeof(known[0]), task_cmp);
	scan_cursor = to;
}

/*
 * A new kthread is named by its creator only after kthreadd has made it: read
 * in between, it is still called "kthreadd". Every later read of its stat
 * refreshes the name, and a thread that turns out to be a workqueue pool
 * worker is set aside.
 */
static void rename_from(struct kthread *k, const struct pstat *ps, struct cycle *c)
{
	if (strcmp(k->comm, ps->comm) == 0)
		return;
	snprintf(k->comm, sizeof(k->comm), "%s", ps->comm);
	if (!k->pool && is_pool_worker(ps->comm)) {
		k->pool = 1;
		c->npool++;
	}
}

/*
 * Add kernel threads that did not exist at the last full scan: only PIDs handed
 * out since then are read, wherever the PID counter wrapped.
 */
static void discover(int procfd, struct cycle *c)
{
	DIR *d = fdopendir(dup(procfd));
	struct dirent *e;
	struct pstat ps;
	int to = last_pid();

	if (!d)
		return;
	rewinddir(d);
	while ((e = readdir(d))) {
		int pid, i, seen = 0;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = atoi(e->d_name);
		if (!pid_handed_out(pid, scan_cursor, to))
			continue;
		for (i = 0; i < c->nthreads; i++)
			if (c->threads[i].t.pid == pid)
				seen = 1;
		if (seen || read_stat(procfd, pid, &ps) < 0 || !(ps.flags & PF_KTHREAD))
			continue;
		if (is_known(pid, ps.start))
			continue;
		if (is_pool_worker(ps.comm)) {
			c->npool++;
			continue;
		}
		if (c->nthreads < MAX_THREADS) {
			struct kthread *k = &c->threads[c->nthreads++];

			k->t.pid = pid;
			k->t.start = ps.start;
			snprintf(k->comm, sizeof(k->comm), "%s", ps.comm);
		}
	}
	closedir(d);
}

static int same_task(int procfd, const struct task *t, struct pstat *ps)
{
	return read_stat(procfd, t->pid, ps) == 0 && ps->start == t->start && ps->state != 'X';
}

/*
 * Where a sleeping task waits (/proc/PID/wchan); a new kthread that has not
 * been woken yet waits in kthread() itself (or parks there).
 */
static int waits_in_own_code(int procfd, int pid, char state)
{
	char path[32], wchan[64];

	if (state == 'R')
		return 0;
	snprintf(path, sizeof(path), "%d/wchan", pid);
	if (slurp(procfd, path, wchan, sizeof(wchan)) <= 0 || strcmp(wchan, "0") == 0)
		return 0;
	return strcmp(wchan, "kthread") != 0 && !strstr(wchan, "parkme");
}

/*
 * If kthread_stop() comes before a new kthread is first woken, its function
 * never runs. So a thread counts as having run once it sleeps somewhere other
 * than kthread() itself, has used CPU time, has switched out twice (once may
 * be its creation), or has exited on its own.
 */
static int all_ran(int procfd, struct cycle *c)
{
	int i, ok = 1;
	struct pstat ps;

	for (i = 0; i < c->nthreads; i++) {
		struct kthread *k = &c->threads[i];

		if (k->ran || k->pool)
			continue;
		if (!same_task(procfd, &k->t, &ps) || ps.state == 'Z') {
			k->ran = k->exited = 1;
			continue;
		}
		rename_from(k, &ps, c);
		if (k->pool)
			continue;
		else if (ps.utime + ps.stime > 0 || waits_in_own_code(procfd, k->t.pid, ps.state) ||
			 context_switches(procfd, k->t.pid) >= 2)
			k->ran = 1;
		else
			ok = 0;
	}
	return ok;
}

static int named_threads(const struct cycle *c, const char *comm)
{
	int i, n = 0;

	for (i = 0; comm && i < c->nthreads; i++)
		if (!c->threads[i].pool && strcmp(c->threads[i].comm, comm) == 0)
			n++;
	return n;
}

/*
 * After unload: which of the cycle's threads still exist. A thread that is
 * already inside do_exit() (PF_EXITING) has left the module's code: kthread_stop()
 * returns at that point, so such a thread is on its way out, not left behind.
 */
static int threads_left(int procfd, struct cycle *c)
{
	struct pstat ps;
	int i, tries, left = 0;

	/* A thread that has just signalled the module's exit (kthread_complete_and_exit)
	 * may need a moment to reach do_exit(): look three times, 2 ms apart. A thread
	 * sleeping in module code stays. */
	for (tries = 0; tries < 3; tries++) {
		left = 0;
		for (i = 0; i < c->nthreads; i++) {
			struct kthread *k = &c->threads[i];

			k->left = 0;
			if (k->pool || !same_task(procfd, &k->t, &ps) || ps.state == 'Z')
				continue;
			rename_from(k, &ps, c);
			k->left = !k->pool && !(ps.flags & PF_EXITING);
			left += k->left;
		}
		if (!left)
			break;
		sleep_us(2000);
	}
	return left;
}

/* The module's line in /proc/modules ("" if not listed). */
static int module_line(const char *name, char *out, size_t size)
{
	FILE *f = fopen("/proc/modules", "r");
	char line[512];
	size_t n = strlen(name);

	out[0] = '\0';
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, size, "%s", line);
			break;
		}
	fclose(f);
	return out[0] != '\0';
}

static int refcount(const char *name)
{
	char path[300], buf[32];

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", name);
	return slurp(AT_FDCWD, path, buf, sizeof(buf)) > 0 ? atoi(buf) : -1;
}

static void meminfo(long *avail_kb, long *slab_kb)
{
	char buf[4096], *p;

	*avail_kb = *slab_kb = -1;
	if (slurp(AT_FDCWD, "/proc/meminfo", buf, sizeof(buf)) <= 0)
		return;
	if ((p = strstr(buf, "MemAvailable:")))
		*avail_kb = atol(p + 13);
	if ((p = strstr(buf, "\nSlab:")))
		*slab_kb = atol(p + 6);
}

/* ---- registrations ------------------------------------------------------------
 *
 * What a load registered must be gone after its unload. Two sources, both read
 * cheaply every cycle:
 * - the kernel's uevents (a netlink socket): every device, class, misc device,
 *   network and block device the kernel adds or removes is announced, so a
 *   device the cycle added and did not remove is left behind, with no
 *   directory walk of /sys;
 * - small tables the kernel keeps without devices: char and block majors
 *   (/proc/devices), filesystems (/proc/filesystems), interrupt handlers
 *   (/proc/interrupts, its counts set aside) and the entries at the top of /proc
 *   (gathered by the scan of /proc every cycle makes anyway). Each is compared
 *   with its state before the load. A misc device is a device: its uevent names it.
 */
#define REG_TABLE_SIZE 16384
struct reg_table {
	const char *path;
	char before[REG_TABLE_SIZE];
	ssize_t len;
};
static struct reg_table reg_tables[] = {
	{ .path = "/proc/devices" }, { .path = "/proc/filesystems" }, { .path = "/proc/interrupts" },
};
#define NREG_TABLES (sizeof(reg_tables) / sizeof(reg_tables[0]))
static char proc_names_before[REG_TABLE_SIZE];
static int uevent_fd = -1;
static char added[MAX_ADDED][192];
static int nadded, added_more;

static void registered(struct cycle *c, const char *what)
{
	if (c->nregistered < MAX_REGISTERED)
		snprintf(c->registered[c->nregistered++], sizeof(c->registered[0]), "%s", what);
	else
		c->registered_more++;
}

/* /proc/interrupts without its counters: the handlers, not how often they ran. */
static ssize_t drop_counts(char *buf, ssize_t len)
{
	char *in = buf, *out = buf, *end = buf + len;

	while (in < end) {
		char *tok = in;
		int digits = 1;

		while (in < end && *in != ' ' && *in != '\n')
			digits &= isdigit((unsigned char)*in++) != 0;
		if (in > tok && !digits) {
			if (out > buf && out[-1] != '\n')
				*out++ = ' ';
			memmove(out, tok, in - tok);
			out += in - tok;
		}
		if (in < end && *in++ == '\n')
			*out++ = '\n';
	}
	*out = '\0';
	return out - buf;
}

static ssize_t read_table(const struct reg_table *t, char *buf)
{
	ssize_t len = slurp(AT_FDCWD, t->path, buf, REG_TABLE_SIZE);

	if (len > 0 && strcmp(t->path, "/proc/interrupts") == 0)
		len = drop_counts(buf, len);
	return len;
}

/* How a line of one table names what it holds ("char major 240 'xyz'"). */
static void describe(const char *path, const char *section, const char *line, char *out,
		     size_t size)
{
	char name[128] = "";
	int num = -1;

	if (strcmp(path, "/proc/devices") == 0 && sscanf(line, "%d %127s", &num, name) == 2)
		snprintf(out, size, "%s major %d '%s'", section, num, name);
	else if (strcmp(path, "/proc/filesystems") == 0)
		snprintf(out, size, "filesystem '%s'", line + strspn(line, "nodev \t"));
	else
		snprintf(out, size, "%s: %s", path, line);
}

/* Lines of ``now`` that ``before`` does not have: what was registered since. */
static void table_diff(const char *path, const char *before, char *now, struct cycle *c)
{
	char *save = NULL, *line, section[16] = "char", what[256];

	for (line = strtok_r(now, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *hit = before;
		size_t n = strlen(line);

		if (strcmp(line, "Block devices:") == 0)
			strcpy(section, "block");
		while ((hit = strstr(hit, line)) &&
		       !((hit == before || hit[-1] == '\n') && (hit[n] == '\n' || hit[n] == '\0')))
			hit++;
		if (hit)
			continue;
		describe(path, section, line, what, sizeof(what));
		registered(c, what);
	}
}

static void uevents_open(void)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int size = 1 << 20;

	uevent_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			   NETLINK_KOBJECT_UEVENT);
	if (uevent_fd < 0)
		return;
	setsockopt(uevent_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (bind(uevent_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(uevent_fd);
		uevent_fd = -1;
	}
}

/* Read the uevents that arrived: remember devices added, forget those removed. */
static void uevents_drain(void)
{
	char msg[4096];
	ssize_t len;

	while (uevent_fd >= 0 && (len = recv(uevent_fd, msg, sizeof(msg) - 1, 0)) > 0) {
		char *at = memchr(msg, '@', len), *path;
		int i;

		msg[len] = '\0';
		if (!at)
			continue;
		*at = '\0';
		path = at + 1;
		if (strncmp(path, "/module/", 8) == 0)	/* the module itself */
			continue;
		if (strcmp(msg, "add") == 0) {
			if (nadded < MAX_ADDED)
				snprintf(added[nadded++], sizeof(added[0]), "%s", path);
			else
				added_more++;
		} else if (strcmp(msg, "remove") == 0) {
			for (i = nadded - 1; i >= 0; i--)
				if (strcmp(added[i], path) == 0) {
					memmove(added[i], added[i + 1], (nadded - i - 1) * sizeof(added[0]));
					nadded--;
					break;
				}
		}
	}
}

/* Drop the uevents that arrived so far: they belong to no load of the module. */
static void uevents_forget(void)
{
	uevents_drain();
	nadded = added_more = 0;
}

/* The registration state the next load is compared with. */
static void registrations_before(void)
{
	size_t i;

	for (i = 0; i < NREG_TABLES; i++)
		reg_tables[i].len = read_table(&reg_tables[i], reg_tables[i].before);
	strcpy(proc_names_before, proc_names_now);	/* the baseline scan's */
	uevents_forget();
}

/* After an unload (or a failed load): what it registered and left behind. */
static void registrations_after(struct cycle *c)
{
	static char now[REG_TABLE_SIZE];
	size_t i;
	int j;

	uevents_drain();
	for (j = 0; j < nadded; j++) {
		char what[256];

		snprintf(what, sizeof(what), "device %.240s", added[j]);
		registered(c, what);
	}
	c->registered_more += added_more;
	if (nadded || added_more) {
		/*
		 * A device left behind usually points into the freed module (a misc
		 * device's struct, a name string): reading the tables that list it
		 * would walk into freed memory. The device names the leftover; the
		 * tables are compared again after the next unload.
		 */
		nadded = added_more = 0;
		return;
	}
	for (i = 0; i < NREG_TABLES; i++) {
		struct reg_table *t = &reg_tables[i];
		ssize_t len = read_table(t, now);

		if (len == t->len && memcmp(now, t->before, len) == 0)
			continue;
		table_diff(t->path, t->before, now, c);
		t->len = read_table(t, t->before);	/* the next cycle is judged on its own */
	}
	if (strcmp(proc_names_now, proc_names_before) != 0) {
		strcpy(now, proc_names_now);
		char *save = NULL, *name, what[256], key[260];

		for (name = strtok_r(now, "\n", &save); name; name = strtok_r(NULL, "\n", &save)) {
			snprintf(key, sizeof(key), "\n%s\n", name);
			if (strstr(proc_names_before, key))
				continue;
			snprintf(what, sizeof(what), "/proc/%s", name);
			registered(c, what);
		}
		strcpy(proc_names_before, proc_names_now);
	}
	nadded = added_more = 0;
}

/* One /dev/kmsg record's text, timestamp and level; 0 when there is nothing more to read. */
static int kmsg_next(int fd, char *rec, size_t size, char **msg, long long *ts, int *level)
{
	for (;;) {
		ssize_t len = read(fd, rec, size - 1);
		char *semi, *nl, *p;

		if (len < 0) {
			if (errno == EPIPE)	/* overwritten records: carry on */
				continue;
			return 0;		/* EAGAIN: nothing more */
		}
		rec[len] = '\0';
		semi = strchr(rec, ';');
		if (!semi)
			continue;
		nl = strchr(semi, '\n');
		if (nl)
			*nl = '\0';
		*msg = semi + 1;
		/* "prio,seq,ts_us,flags;message", prio = facility * 8 + level */
		*level = atoi(rec) & 7;
		*ts = 0;
		p = strchr(rec, ',');
		if (p && (p = strchr(p + 1, ',')))
			*ts = atoll(p + 1);
		return 1;
	}
}

/*
 * Read every new /dev/kmsg record: count the start and wake-up lines, and keep
 * the other messages of warning level or worse (every oops, BUG, WARNING, stall
 * and ignored-parameter report is one) for the host to judge; the first
 * MAX_KLOG in full, the rest counted.
 */
static void drain_kmsg(int fd, regex_t *start, regex_t *wake, struct cycle *c)
{
	char rec[2048], *msg;
	long long ts;
	int level, counted;
	regmatch_t m[2];

	while (fd >= 0 && kmsg_next(fd, rec, sizeof(rec), &msg, &ts, &level)) {
		counted = 0;
		if (start && regexec(start, msg, 0, NULL, 0) == 0) {
			c->starts++;
			counted = 1;
		}
		if (wake && regexec(wake, msg, 2, m, 0) == 0) {
			c->wakes++;
			counted = 1;
			if (c->nwake_ts < MAX_WAKES) {
				c->wake_id[c->nwake_ts] = m[1].rm_so >= 0 ? atoi(msg + m[1].rm_so) : 0;
				c->wake_ts[c->nwake_ts++] = ts;
			}
		}
		if (counted || level > LOG_WARNING_LEVEL)
			continue;
		if (c->nklog < MAX_KLOG)
			snprintf(c->klog[c->nklog++], sizeof(c->klog[0]), "%s", msg);
		else
			c->klog_more++;
	}
}

/* ---- the unload watchdog ------------------------------------------------------ */

/*
 * Shared with the watchdog without locks or wake-ups (a wake-up per cycle costs
 * more than the rest of the checks under emulation): the main thread stamps
 * the start of each delete_module() and clears it after; the watchdog looks
 * every quarter of the limit.
 */
static struct {
	long long start_us;	/* 0: no unload in progress */
	long n;			/* its cycle */
	long limit_ms;
	const char *name;
	pid_t tid;		/* the task blocked in delete_module() */
} unl;

static int split_lines(char *text, char lines[][256], int max, int n)
{
	char *save = NULL, *line;

	for (line = strtok_r(text, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save))
		snprintf(lines[n++], 256, "%s", line);
	return n;
}

/*
 * Where the unloading task is stuck: its kernel stack where the kernel keeps
 * /proc/PID/stack (CONFIG_STACKTRACE), else the kernel's own dump of blocked
 * tasks (sysrq w), read back from /dev/kmsg.
 */
static void report_blocked(long n, long long after_us)
{
	static char ev[MAX_EVIDENCE][256];
	char path[64], buf[4096], modline[512], wchan[64] = "";
	const char *how = "stack";
	int nev = 0, fd;

	module_line(unl.name, modline, sizeof(modline));
	snprintf(path, sizeof(path), "/proc/self/task/%d/wchan", (int)unl.tid);
	slurp(AT_FDCWD, path, wchan, sizeof(wchan));
	snprintf(path, sizeof(path), "/proc/self/task/%d/stack", (int)unl.tid);
	if (slurp(AT_FDCWD, path, buf, sizeof(buf)) > 0) {
		nev = split_lines(buf, ev, MAX_EVIDENCE, 0);
	} else if ((fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK)) >= 0) {
		char rec[2048], *msg;
		long long ts;
		int level, trig = open("/proc/sysrq-trigger", O_WRONLY);

		how = "sysrq-w";
		lseek(fd, 0, SEEK_END);
		if (trig >= 0) {
			if (write(trig, "w", 1) != 1)
				how = "sysrq-w refused";
			close(trig);
		} else {
			how = "no stack: /proc/PID/stack and /proc/sysrq-trigger missing";
		}
		sleep_us(300000);
		while (kmsg_next(fd, rec, sizeof(rec), &msg, &ts, &level) && nev < MAX_EVIDENCE)
			snprintf(ev[nev++], 256, "%s", msg);
		close(fd);
	}
	pthread_mutex_lock(&out_lock);
	printf("{\"type\":\"unload-blocked\",\"n\":%ld,\"after_us\":%lld,\"limit_ms\":%ld,"
	       "\"module\":", n, after_us, unl.limit_ms);
	json_str(stdout, modline);
	printf(",\"wchan\":");
	json_str(stdout, wchan);
	printf(",\"stack_from\":");
	json_str(stdout, how);
	json_lines(stdout, "stack", ev, nev);
	printf("}\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static void *watchdog(void *arg)
{
	long reported = 0;

	(void)arg;
	for (;;) {
		long long start;
		long n;

		sleep_us(unl.limit_ms * 250);
		start = __atomic_load_n(&unl.start_us, __ATOMIC_ACQUIRE);
		n = __atomic_load_n(&unl.n, __ATOMIC_RELAXED);
		if (start && n != reported && now_us() - start > unl.limit_ms * 1000LL) {
			reported = n;
			report_blocked(n, now_us() - start);
		}
	}
	return NULL;
}

static int unload(const char *name, long n)
{
	int rc, saved;

	__atomic_store_n(&unl.n, n, __ATOMIC_RELAXED);
	__atomic_store_n(&unl.start_us, now_us(), __ATOMIC_RELEASE);
	rc = syscall(SYS_delete_module, name, O_NONBLOCK);
	saved = errno;
	__atomic_store_n(&unl.start_us, 0, __ATOMIC_RELEASE);
	errno = saved;
	return rc;
}

static void start_watchdog(long limit_ms, const char *name)
{
	pthread_t t;

	unl.limit_ms = limit_ms > 4 ? limit_ms : 4;
	unl.name = name;
	unl.tid = getpid();	/* the main thread does the unloading */
	pthread_create(&t, NULL, watchdog, NULL);
}

/* ---- records ---------------------------------------------------------------------- */

static void print_cycle(const struct opts *o, const struct cycle *c)
{
	int i;

	pthread_mutex_lock(&out_lock);
	printf("{\"type\":\"cycle\",\"n\":%ld,\"t_us\":%lld,\"load_us\":%lld,\"threads_us\":%lld,"
	       "\"unload_us\":%lld,\"check_us\":%lld", c->n, c->t_us, c->load_us, c->threads_us,
	       c->unload_us, c->check_us);
	if (!o->bare) {
		int first = 1;

		printf(",\"threads\":[");
		for (i = 0; i < c->nthreads; i++) {
			const struct kthread *k = &c->threads[i];

			if (k->pool)
				continue;
			printf("%s{\"comm\":", first ? "" : ",");
			first = 0;
			json_str(stdout, k->comm);
			printf(",\"pid\":%d,\"ran\":%d,\"exited\":%d,\"left\":%d}", k->t.pid, k->ran,
			       k->exited, k->left);
		}
		printf("],\"pool_workers\":%d,\"named\":%d,\"named_after\":%d,\"refcnt\":%d,\"module_listed\":%d,"
		       "\"zombies\":%d,\"procs\":%d,\"starts\":%d,\"wakes\":%d,\"mem_avail_kb\":%ld,"
		       "\"slab_kb\":%ld",
		       c->npool, c->named, c->named_after, c->refcnt, c->module_listed, c->zombies, c->procs,
		       c->starts, c->wakes, c->mem_avail_kb, c->slab_kb);
		json_lines(stdout, "klog", (char (*)[256])c->klog, c->nklog);
		json_lines(stdout, "registered", (char (*)[256])c->registered, c->nregistered);
		if (c->registered_more)
			printf(",\"registered_more\":%d", c->registered_more);
		if (c->klog_more)
			printf(",\"klog_more\":%d", c->klog_more);
		if (c->nwake_ts) {
			printf(",\"wake_ts\":[");
			for (i = 0; i < c->nwake_ts; i++)
				printf("%s[%d,%lld]", i ? "," : "", c->wake_id[i], c->wake_ts[i]);
			printf("]");
		}
	}
	if (c->err[0]) {
		printf(",\"err\":");
		json_str(stdout, c->err);
	}
	printf("}\n");
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	char *buf;

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	buf = malloc(st.st_size);
	if (buf && read(fd, buf, st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	close(fd);
	*len = st.st_size;
	return buf;
}

static void usage(void)
{
	fprintf(stderr, "usage: soak-agent -m MODULE.ko -n NAME [-c CYCLES] [-p PARAMS] [-H HOLD_MS]\n"
		"       [-W HOLD_LIMIT_MS] [-U UNLOAD_LIMIT_MS] [-t COMM -T THREADS] [-s START_RE]\n"
		"       [-w WAKE_RE] [-D EVERY -S DWELL_MS] [-b] [-k]\n");
	exit(2);
}

/*
 * The host's answers to the cycle records, one byte each on standard input:
 * 'c' go on, 's' stop. Reads what has arrived, and waits until ``needed``
 * cycles have been answered. Returns 1 when the soak must stop: an 's', or end
 * of file (the host has gone).
 */
static int host_says_stop(long needed)
{
	static long answered;
	char buf[64];

	for (;;) {
		int flags = answered >= needed ? O_NONBLOCK : 0;
		ssize_t i, got;

		fcntl(0, F_SETFL, flags);
		got = read(0, buf, sizeof(buf));
		if (got == 0)
			return 1;
		if (got < 0)
			return errno == EAGAIN ? 0 : 1;
		for (i = 0; i < got; i++)
			if (buf[i] == 's')
				return 1;
		answered += got;
	}
}

/* Keep the module loaded until its threads have run and the minimum hold has passed. */
static void hold(const struct opts *o, int procfd, struct cycle *c, long long t0)
{
	long long limit = t0 + o->hold_limit_ms * 1000LL;
	long long min_until = now_us() + o->hold_ms * 1000LL;

	for (;;) {
		int ready;

		discover(procfd, c);
		c->named = named_threads(c, o->comm);
		ready = all_ran(procfd, c) && (!o->comm || c->named >= o->threads);
		if (ready && !c->threads_us)
			c->threads_us = now_us() - t0;
		if ((ready && now_us() >= min_until) || now_us() > limit)
			break;
		sleep_us(500);
	}
	if (!c->threads_us)
		c->threads_us = now_us() - t0;
}

int main(int argc, char **argv)
{
	struct opts o = { .params = "", .cycles = 1, .hold_limit_ms = 10000,
			  .unload_limit_ms = 1000 };
	static struct cycle c;
	regex_t start_re, wake_re;
	int opt, kmsg = -1, procfd, base_zombies = 0, base_procs = 0;
	size_t len;
	char *image, buf[32];
	long n, done = 0;

	while ((opt = getopt(argc, argv, "m:n:t:T:p:c:s:w:D:S:H:W:U:bk")) != -1) {
		switch (opt) {
		case 'm': o.path = optarg; break;
		case 'n': o.name = optarg; break;
		case 't': o.comm = optarg; break;
		case 'T': o.threads = atol(optarg); break;
		case 'p': o.params = optarg; break;
		case 'c': o.cycles = atol(optarg); break;
		case 's': o.start_re = optarg; break;
		case 'w': o.wake_re = optarg; break;
		case 'D': o.dwell_every = atol(optarg); break;
		case 'S': o.dwell_ms = atol(optarg); break;
		case 'H': o.hold_ms = atol(optarg); break;
		case 'W': o.hold_limit_ms = atol(optarg); break;
		case 'U': o.unload_limit_ms = atol(optarg); break;
		case 'b': o.bare = 1; break;
		case 'k': o.keep_going = 1; break;
		default: usage();
		}
	}
	if (!o.path || !o.name || o.cycles < 1 || o.hold_ms < 0)
		usage();
	image = read_file(o.path, &len);
	if (!image) {
		printf("{\"type\":\"error\",\"err\":\"cannot read %s: %s\"}\n", o.path, strerror(errno));
		return 2;
	}
	if ((o.start_re && regcomp(&start_re, o.start_re, REG_EXTENDED | REG_NOSUB)) ||
	    (o.wake_re && regcomp(&wake_re, o.wake_re, REG_EXTENDED))) {
		printf("{\"type\":\"error\",\"err\":\"bad regular expression\"}\n");
		return 2;
	}
	procfd = open("/proc", O_RDONLY | O_DIRECTORY);
	if (slurp(AT_FDCWD, "/proc/sys/kernel/pid_max", buf, sizeof(buf)) > 0)
		pid_max = atoi(buf);
	if (!o.bare) {
		kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
		if (kmsg >= 0)
			lseek(kmsg, 0, SEEK_END);
		full_scan(procfd, NULL, NULL, &base_zombies, &base_procs, 1);
		uevents_open();
		registrations_before();
		start_watchdog(o.unload_limit_ms, o.name);
	}
	{
		long avail, slab;

		meminfo(&avail, &slab);
		printf("{\"type\":\"baseline\",\"zombies\":%d,\"procs\":%d,\"t_us\":%lld,\"kmsg\":%s,"
		       "\"mem_avail_kb\":%ld,\"slab_kb\":%ld,\"pid_max\":%d,\"agent_pid\":%d}\n",
		       base_zombies, base_procs, now_us(), kmsg >= 0 ? "true" : "false", avail, slab,
		       pid_max, (int)getpid());
		fflush(stdout);
	}

	for (n = 1; n <= o.cycles; n++) {
		long long t0;

		/* the host's judgement of every cycle but the last one run */
		if (!o.keep_going && !o.bare && n > 1 && host_says_stop(n - 2))
			break;
		memset(&c, 0, sizeof(c));
		c.n = n;
		c.refcnt = -1;
		if (!o.bare)
			uevents_forget();	/* what came between the cycles is not this load's */
		c.t_us = t0 = now_us();
		if (syscall(SYS_init_module, image, len, o.params) != 0) {
			snprintf(c.err, sizeof(c.err), "init_module: %s", strerror(errno));
			c.load_us = now_us() - t0;
			if (!o.bare) {
				/* a failed init must leave nothing: threads it started, registrations */
				discover(procfd, &c);
				threads_left(procfd, &c);
				full_scan(procfd, o.comm, &c.named_after, &c.zombies, &c.procs, 0);
				registrations_after(&c);
				drain_kmsg(kmsg, NULL, NULL, &c);
			}
			print_cycle(&o, &c);
			done = n;
			if (o.bare)
				break;
			continue;
		}
		c.load_us = now_us() - t0;
		if (!o.bare) {
			hold(&o, procfd, &c, t0);
			c.refcnt = refcount(o.name);
		}
		if (o.dwell_every > 0 && n % o.dwell_every == 0)
			sleep_us(o.dwell_ms * 1000L);
		t0 = now_us();
		if ((o.bare ? syscall(SYS_delete_module, o.name, O_NONBLOCK) : unload(o.name, n)) != 0)
			snprintf(c.err, sizeof(c.err), "delete_module: %s", strerror(errno));
		c.unload_us = now_us() - t0;
		if (!o.bare) {
			char line[512];
			long long t_check = now_us();

			threads_left(procfd, &c);
			full_scan(procfd, o.comm, &c.named_after, &c.zombies, &c.procs, 0);
			if (n == o.cycles && young_zombie_since) {
				/* the last cycle: see whether its new zombies get reaped */
				sleep_us(young_zombie_since + ZOMBIE_GRACE_US - now_us() + 1000);
				full_scan(procfd, o.comm, &c.named_after, &c.zombies, &c.procs, 0);
			}
			c.module_listed = module_line(o.name, line, sizeof(line));
			if (!c.module_listed)
				registrations_after(&c);
			meminfo(&c.mem_avail_kb, &c.slab_kb);
			drain_kmsg(kmsg, o.start_re ? &start_re : NULL, o.wake_re ? &wake_re : NULL, &c);
			c.check_us = now_us() - t_check;
		}
		print_cycle(&o, &c);
		done = n;
		if (c.module_listed || (o.bare && c.err[0]))
			break;	/* still loaded: the next init_module() cannot load it again */
	}
	pthread_mutex_lock(&out_lock);
	printf("{\"type\":\"end\",\"cycles\":%ld,\"t_us\":%lld}\n",
	       done, now_us());
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	return 0;
}
