/*
 * lab-net: the guest's network, set up by one process at start-up.
 *
 *   lab-net ADDRESS NETMASK GATEWAY
 *
 * Brings loopback up, gives eth0 ADDRESS/NETMASK and brings it up, and adds the
 * default route via GATEWAY: what `ifconfig lo up`, `ifconfig eth0 ... up` and
 * `route add default gw ...` do, in one small program instead of three runs of
 * busybox. Under emulation each of those cost a cold guest 10-20 ms on its way
 * to the first SSH session (exec, dynamic linking, code run for the first time).
 * A route that already exists (the program run twice) is not an error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, "lab-net: %s %s: %s\n", what, arg, strerror(errno));
	return 1;
}

static int parse(const char *text, struct sockaddr *out)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)out;

	memset(out, 0, sizeof(*out));
	sin->sin_family = AF_INET;
	return inet_pton(AF_INET, text, &sin->sin_addr) == 1 ? 0 : -1;
}

static int set_addr(int sock, const char *dev, unsigned long request, const char *text)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
	if (parse(text, &ifr.ifr_addr) != 0) {
		errno = EINVAL;
		return fail("bad address", text);
	}
	if (ioctl(sock, request, &ifr) != 0)
		return fail(request == SIOCSIFADDR ? "address for" : "netmask for", dev);
	return 0;
}

static int up(int sock, const char *dev)
{
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, dev, IFNAMSIZ - 1);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0)
		return fail("flags of", dev);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0)
		return fail("bringing up", dev);
	return 0;
}

static int default_route(int sock, const char *gateway)
{
	struct rtentry rt;

	memset(&rt, 0, sizeof(rt));
	parse("0.0.0.0", &rt.rt_dst);
	parse("0.0.0.0", &rt.rt_genmask);
	if (parse(gateway, &rt.rt_gateway) != 0) {
		errno = EINVAL;
		return fail("bad gateway", gateway);
	}
	rt.rt_flags = RTF_UP | RTF_GATEWAY;
	if (ioctl(sock, SIOCADDRT, &rt) != 0 && errno != EEXIST)
		return fail("default route via", gateway);
	return 0;
}

int main(int argc, char **argv)
{
	int sock;

	if (argc != 4) {
		fprintf(stderr, "usage: lab-net ADDRESS NETMASK GATEWAY\n");
		return 2;
	}
	sock = socket(AF_INET, SOCK_DGRAM, 0);
	if (sock < 0)
		return fail("socket", "");
	if (up(sock, "lo") || set_addr(sock, "eth0", SIOCSIFADDR, argv[1])
	    || set_addr(sock, "eth0", SIOCSIFNETMASK, argv[2]) || up(sock, "eth0")
	    || default_route(sock, argv[3]))
		return 1;
	close(sock);
	return 0;
}
