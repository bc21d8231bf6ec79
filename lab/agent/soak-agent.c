/*
 * soak-agent: runs inside a lab guest and loads/unloads one kernel module N
 * times, checking after each cycle that the module cleaned up after itself.
 * It makes the syscalls itself and reads /proc and /dev/kmsg directly, and
 * prints one JSON line per cycle on stdout (flushed), so the host gets every
 * finished cycle even if the guest dies at the next one.
 *
 * Usage: soak-agent -m MODULE.ko -n NAME [-t THREAD_COMM] [-T THREADS]
 *                   [-p "k=v ..."] [-c CYCLES] [-s START_REGEX] [-w WAKE_REGEX]
 *                   [-D DWELL_EVERY -S DWELL_MS] [-W WAIT_MS] [-b] [-k]
 *   -b  bare: load and unload only, no checks (for benchmarks)
 *   -k  keep going after a failed cycle (default: stop at the first)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_TROUBLE 8
#define MAX_WAKES 4096

struct opts {
	const char *path, *name, *comm, *params, *start_re, *wake_re;
	long cycles, threads, dwell_every, dwell_ms, wait_ms;
	int bare, keep_going;
};

struct cycle {
	long n;
	long long t_us, load_us, threads_us, unload_us;
	int threads_seen, threads_after, module_listed, zombies, procs, starts, wakes;
	int ntrouble;
	char trouble[MAX_TROUBLE][256];
	int nwake_ts;
	int wake_id[MAX_WAKES];
	long long wake_ts[MAX_WAKES];
	char err[256];
};

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

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

/*
 * Counts over /proc: tasks whose comm is `comm`, zombies, all processes, and
 * the highest PID seen. With min_pid > 0 only PIDs above it are read: new
 * tasks get higher PIDs (until the PID space wraps), so after a load this
 * finds the module's threads without reading every process.
 */
static void scan_proc(const char *comm, int min_pid, int *matching, int *zombies, int *procs,
		      int *max_pid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	char path[300], buf[512];

	*matching = *zombies = *procs = 0;
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd;
		ssize_t len;
		char *open_paren, *close_paren;

		int pid;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid = atoi(e->d_name);
		if (pid <= min_pid)
			continue;
		if (max_pid && pid > *max_pid)
			*max_pid = pid;
		snprintf(path, sizeof(path), "%s/stat", e->d_name);
		fd = openat(dirfd(d), path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		open_paren = strchr(buf, '(');
		close_paren = strrchr(buf, ')');
		if (!open_paren || !close_paren || close_paren[1] != ' ')
			continue;
		(*procs)++;
		if (close_paren[2] == 'Z')
			(*zombies)++;
		*close_paren = '\0';
		if (comm && *comm && strcmp(open_paren + 1, comm) == 0)
			(*matching)++;
	}
	closedir(d);
}

static int module_listed(const char *name)
{
	FILE *f = fopen("/proc/modules", "r");
	char line[512];
	size_t n = strlen(name);
	int found = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			found = 1;
			break;
		}
	fclose(f);
	return found;
}

static const char *const trouble_words[] = {
	"Oops", "BUG:", "WARNING:", "Kernel panic", "Unable to handle kernel",
	"general protection fault", "rcu_sched self-detected stall", "rcu: INFO",
	"detected stall", "unhandled", "blocked for more than", "Call Trace", NULL
};

static int is_trouble(const char *msg)
{
	int i;

	for (i = 0; trouble_words[i]; i++)
		if (strstr(msg, trouble_words[i]))
			return 1;
	return 0;
}

/* Read every new /dev/kmsg record; count and collect what the cycle needs. */
static void drain_kmsg(int fd, regex_t *start, regex_t *wake, struct cycle *c)
{
	char rec[2048];

	for (;;) {
		ssize_t len = read(fd, rec, sizeof(rec) - 1);
		char *msg, *nl, *semi;
		long long ts = 0;
		regmatch_t m[2];

		if (len < 0) {
			if (errno == EPIPE)	/* overwritten records: carry on */
				continue;
			break;		/* EAGAIN: nothing more */
		}
		rec[len] = '\0';
		semi = strchr(rec, ';');
		if (!semi)
			continue;
		nl = strchr(semi, '\n');
		if (nl)
			*nl = '\0';
		msg = semi + 1;
		/* "prio,seq,ts_us,flags;message" */
		{
			char *p = strchr(rec, ',');
			if (p && (p = strchr(p + 1, ',')))
				ts = atoll(p + 1);
		}
		if (start && regexec(start, msg, 0, NULL, 0) == 0)
			c->starts++;
		if (wake && regexec(wake, msg, 2, m, 0) == 0) {
			c->wakes++;
			if (c->nwake_ts < MAX_WAKES) {
				c->wake_id[c->nwake_ts] = m[1].rm_so >= 0 ? atoi(msg + m[1].rm_so) : 0;
				c->wake_ts[c->nwake_ts++] = ts;
			}
		}
		if (is_trouble(msg) && c->ntrouble < MAX_TROUBLE)
			snprintf(c->trouble[c->ntrouble++], sizeof(c->trouble[0]), "%s", msg);
	}
}

static void print_cycle(const struct opts *o, const struct cycle *c, int ok)
{
	int i;

	printf("{\"type\":\"cycle\",\"n\":%ld,\"t_us\":%lld,\"load_us\":%lld,\"threads_us\":%lld,"
	       "\"unload_us\":%lld", c->n, c->t_us, c->load_us, c->threads_us, c->unload_us);
	if (!o->bare) {
		printf(",\"threads_seen\":%d,\"threads_after\":%d,\"module_listed\":%d,"
		       "\"zombies\":%d,\"procs\":%d,\"starts\":%d,\"wakes\":%d",
		       c->threads_seen, c->threads_after, c->module_listed, c->zombies, c->procs,
		       c->starts, c->wakes);
		printf(",\"trouble\":[");
		for (i = 0; i < c->ntrouble; i++) {
			if (i)
				putchar(',');
			json_str(stdout, c->trouble[i]);
		}
		printf("]");
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
	printf(",\"ok\":%s}\n", ok ? "true" : "false");
	fflush(stdout);
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
	fprintf(stderr, "usage: soak-agent -m MODULE.ko -n NAME [-t COMM] [-T THREADS] [-p PARAMS]\n"
		"       [-c CYCLES] [-s START_RE] [-w WAKE_RE] [-D EVERY -S DWELL_MS] [-W WAIT_MS] [-b] [-k]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct opts o = { .params = "", .cycles = 1, .wait_ms = 10000 };
	static struct cycle c;
	regex_t start_re, wake_re;
	int opt, kmsg = -1, base_zombies = 0, base_procs = 0, dummy, failed = 0, last_pid = 0;
	size_t len;
	char *image;
	long n;

	while ((opt = getopt(argc, argv, "m:n:t:T:p:c:s:w:D:S:W:bk")) != -1) {
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
		case 'W': o.wait_ms = atol(optarg); break;
		case 'b': o.bare = 1; break;
		case 'k': o.keep_going = 1; break;
		default: usage();
		}
	}
	if (!o.path || !o.name)
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
	if (!o.bare) {
		kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
		if (kmsg >= 0)
			lseek(kmsg, 0, SEEK_END);
		scan_proc(NULL, 0, &dummy, &base_zombies, &base_procs, &last_pid);
	}
	printf("{\"type\":\"baseline\",\"zombies\":%d,\"procs\":%d,\"t_us\":%lld,\"kmsg\":%s}\n",
	       base_zombies, base_procs, now_us(), kmsg >= 0 ? "true" : "false");
	fflush(stdout);

	for (n = 1; n <= o.cycles; n++) {
		long long t0, deadline;
		int ok = 1, z;

		memset(&c, 0, sizeof(c));
		c.n = n;
		c.t_us = t0 = now_us();
		if (syscall(SYS_init_module, image, len, o.params) != 0) {
			snprintf(c.err, sizeof(c.err), "init_module: %s", strerror(errno));
			c.load_us = now_us() - t0;
			if (!o.bare)
				drain_kmsg(kmsg, NULL, NULL, &c);
			print_cycle(&o, &c, 0);
			failed = 1;
			break;
		}
		c.load_us = now_us() - t0;
		if (!o.bare && o.comm && o.threads > 0) {
			deadline = t0 + o.wait_ms * 1000LL;
			/* Fast path: only tasks newer than any seen before the load. */
			scan_proc(o.comm, last_pid, &c.threads_seen, &z, &z, NULL);
			while (c.threads_seen < o.threads && now_us() <= deadline) {
				/* Slow path (threads not up yet, or PIDs wrapped): everything. */
				scan_proc(o.comm, 0, &c.threads_seen, &z, &z, NULL);
				if (c.threads_seen < o.threads)
					sleep_ms(1);
			}
			c.threads_us = now_us() - t0;
			if (c.threads_seen < o.threads)
				ok = 0;
		}
		if (o.dwell_every > 0 && n % o.dwell_every == 0)
			sleep_ms(o.dwell_ms);
		t0 = now_us();
		if (syscall(SYS_delete_module, o.name, O_NONBLOCK) != 0) {
			snprintf(c.err, sizeof(c.err), "delete_module: %s", strerror(errno));
			ok = 0;
		}
		c.unload_us = now_us() - t0;
		if (!o.bare) {
			last_pid = 0;
			scan_proc(o.comm, 0, &c.threads_after, &c.zombies, &c.procs, &last_pid);
			c.zombies -= base_zombies;
			c.module_listed = module_listed(o.name);
			drain_kmsg(kmsg, o.start_re ? &start_re : NULL, o.wake_re ? &wake_re : NULL, &c);
			if (c.threads_after || c.module_listed || c.zombies > 0 || c.ntrouble ||
			    (o.start_re && o.threads > 0 && c.starts != o.threads))
				ok = 0;
		}
		print_cycle(&o, &c, ok);
		if (!ok) {
			failed = 1;
			if (!o.keep_going || c.module_listed)
				break;
		}
	}
	printf("{\"type\":\"end\",\"cycles\":%ld,\"failed\":%s,\"t_us\":%lld}\n",
	       n > o.cycles ? o.cycles : n, failed ? "true" : "false", now_us());
	fflush(stdout);
	return failed ? 1 : 0;
}
