/*
 * lab-fresh: run once in a guest just restored from a snapshot, before anything
 * talks to it, so that two guests restored from one snapshot share neither their
 * random numbers nor their clock.
 *
 *   lab-fresh TOKEN SECONDS NANOSECONDS
 *
 * 1. Reads 64 bytes from the hardware RNG (/dev/hwrng: QEMU's virtio-rng, fed by
 *    the host's entropy for *this* QEMU process), mixes them into the kernel's
 *    input pool with full credit (RNDADDENTROPY) and makes the kernel's CRNG
 *    reseed now (RNDRESEEDCRNG) instead of at its next scheduled reseed. Every
 *    reader of /dev/urandom or getrandom() after this point, the SSH server's
 *    per-connection seeding included, gets output the snapshot could not predict.
 * 2. Sets the wall clock to the host's (the guest's clock resumes at the time the
 *    snapshot was taken).
 * 3. Prints "lab-guest: fresh TOKEN" on success; the host waits for that line.
 *
 * Nothing secret crosses the serial console: the bytes come from the RNG device.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SEED_BYTES 64

static int fail(const char *what)
{
	fprintf(stderr, "lab-fresh: %s: %s\n", what, strerror(errno));
	return 1;
}

static int read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct {
		struct rand_pool_info info;
		unsigned char bytes[SEED_BYTES];
	} seed;
	struct timespec now;
	int hw, rnd;

	if (argc != 4) {
		fprintf(stderr, "usage: lab-fresh TOKEN SECONDS NANOSECONDS\n");
		return 2;
	}
	hw = open("/dev/hwrng", O_RDONLY);
	if (hw < 0)
		return fail("/dev/hwrng");
	if (read_full(hw, seed.bytes, SEED_BYTES) < 0)
		return fail("reading /dev/hwrng");
	close(hw);

	rnd = open("/dev/urandom", O_WRONLY);
	if (rnd < 0)
		return fail("/dev/urandom");
	seed.info.entropy_count = SEED_BYTES * 8;
	seed.info.buf_size = SEED_BYTES;
	if (ioctl(rnd, RNDADDENTROPY, &seed) < 0)
		return fail("RNDADDENTROPY");
	if (ioctl(rnd, RNDRESEEDCRNG) < 0)
		return fail("RNDRESEEDCRNG");
	close(rnd);
	memset(&seed, 0, sizeof(seed));

	now.tv_sec = (time_t)strtoll(argv[2], NULL, 10);
	now.tv_nsec = strtol(argv[3], NULL, 10);
	if (clock_settime(CLOCK_REALTIME, &now) < 0)
		return fail("clock_settime");

	printf("lab-guest: fresh %s\n", argv[1]);
	return 0;
}
