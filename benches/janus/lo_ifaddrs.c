/*
 * getifaddrs() shim for running Janus (and libnice) on loopback alone.
 *
 * Janus skips interfaces flagged IFF_LOOPBACK when it gathers ICE candidates, so on a
 * loopback-only benchmark it would offer no usable candidate. Preloaded with LD_PRELOAD, this
 * wrapper calls the real getifaddrs(), keeps only the entries of interface "lo" with an IPv4
 * address, and clears IFF_LOOPBACK on them. Everything else is unlinked from the list.
 *
 * glibc allocates the whole list in one block and freeifaddrs() frees only the head pointer,
 * so the head must stay the head: other entries are unlinked, and a head that is not kept is
 * neutralised (no address, no flags) instead of being removed.
 *
 * Built by the benchmark: gcc -shared -fPIC -O2 -o lo_ifaddrs.so lo_ifaddrs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*getifaddrs_fn)(struct ifaddrs **);

static int keep(const struct ifaddrs *ifa)
{
	return ifa->ifa_name != NULL && strcmp(ifa->ifa_name, "lo") == 0 &&
	       ifa->ifa_addr != NULL && ifa->ifa_addr->sa_family == AF_INET;
}

int getifaddrs(struct ifaddrs **out)
{
	getifaddrs_fn real = (getifaddrs_fn)dlsym(RTLD_NEXT, "getifaddrs");
	if (real == NULL)
		return -1;
	int rc = real(out);
	if (rc != 0 || *out == NULL)
		return rc;

	struct ifaddrs *head = *out;
	/* Unlink every entry after the head that is not kept. */
	struct ifaddrs *prev = head;
	while (prev->ifa_next != NULL) {
		struct ifaddrs *cur = prev->ifa_next;
		if (keep(cur)) {
			cur->ifa_flags &= ~IFF_LOOPBACK;
			prev = cur;
		} else {
			prev->ifa_next = cur->ifa_next;
		}
	}
	if (keep(head)) {
		head->ifa_flags &= ~IFF_LOOPBACK;
	} else {
		/* Keep the block's head in place, but make it an entry nobody uses. */
		head->ifa_addr = NULL;
		head->ifa_netmask = NULL;
		head->ifa_flags = 0;
	}
	return 0;
}
