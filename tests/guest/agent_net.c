/* kiln-agent test for virtio-net (kiln.test=net): sets eth0 up, pings the host, moves a TCP
 * stream each way with CRC-32 checks, and waits while the host pings it. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define CHUNK (64u * 1024)
#define IO_TIMEOUT_S 120

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Gives ifname the address ADDR/PREFIX (text) and brings it up. */
static int if_config(const char *ifname, const char *cidr, struct result *r)
{
	char why[160];

	if (agent_if_config(ifname, cidr, why, sizeof(why)) < 0) {
		result_fail(r, "kiln.net_ip=%s: %s", cidr, why);
		return -EINVAL;
	}
	return 0;
}

/* busybox ping -c 3 to peer; 0 when replies came. */
static int ping(const char *peer)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		char *argv[] = { "ping", "-c", "3", "-W", "3", "-w", "30", (char *)peer, NULL };

		execv(BUSYBOX, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Icmp InEchos from /proc/net/snmp: echo requests this guest received. */
static long icmp_in_echos(void)
{
	char buf[4096], *names, *values;
	int col = 0;

	if (read_text("/proc/net/snmp", buf, sizeof(buf)) < 0)
		return -1;
	names = strstr(buf, "Icmp: InMsgs");
	values = names ? strstr(names + 1, "Icmp: ") : NULL;
	if (!values)
		return -1;
	for (char *p = names; *p && *p != '\n'; p++) {
		if (*p != ' ')
			continue;
		col++;
		if (!strncmp(p + 1, "InEchos ", 8)) {
			char *v = values;

			for (int i = 0; i < col && v; i++)
				v = strchr(v + 1, ' ');
			return v ? strtol(v + 1, NULL, 10) : -1;
		}
	}
	return -1;
}

static void set_timeouts(int s)
{
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Connects to peer:port, retrying for up to 30 s while the host is not listening yet. */
static int tcp_connect(const char *peer, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };

	inet_pton(AF_INET, peer, &sa.sin_addr);
	for (int i = 0; i < 60; i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (s < 0)
			return -1;
		set_timeouts(s);
		if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return s;
		close(s);
		usleep(500 * 1000);
	}
	return -1;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct stream {
	uint64_t tx_bytes, rx_bytes;
	uint32_t tx_crc, rx_crc;
	double tx_s, rx_s;
};

/* Reads one line (up to size - 1 bytes) from s, byte by byte so the data after it stays. */
static int read_line(int s, char *line, size_t size)
{
	size_t n = 0;

	while (n < size - 1) {
		ssize_t k = read(s, line + n, 1);

		if (k <= 0)
			return -1;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	return 0;
}

/*
 * Sends mib MiB of seeded bytes, half-closes, then reads the host's line "crc=H bytes=N back=M
 * backcrc=H2" and M bytes more; checks both CRCs.
 */
static void tcp_stream(int s, unsigned long mib, uint64_t seed, struct stream *st,
		       struct result *r)
{
	static uint64_t buf[CHUNK / 8];
	unsigned long long host_bytes = 0, back = 0;
	unsigned host_crc = 0, back_crc = 0;
	char line[160];
	double t0 = now_s();

	for (uint64_t left = (uint64_t)mib << 20; left > 0;) {
		size_t n = left < CHUNK ? (size_t)left : CHUNK;
		const uint8_t *p = (const uint8_t *)buf;

		for (size_t i = 0; i < CHUNK / 8; i++)
			buf[i] = xorshift(&seed);
		st->tx_crc = crc32_update(st->tx_crc, p, n);
		for (size_t done = 0; done < n;) {
			ssize_t k = write(s, p + done, n - done);

			if (k <= 0) {
				result_fail(r, "sending to the host after %llu bytes: %s",
					    (unsigned long long)st->tx_bytes, strerror(errno));
				return;
			}
			done += (size_t)k;
			st->tx_bytes += (uint64_t)k;
		}
		left -= n;
	}
	shutdown(s, SHUT_WR);
	if (read_line(s, line, sizeof(line)) < 0 ||
	    sscanf(line, "crc=%x bytes=%llu back=%llu backcrc=%x", &host_crc, &host_bytes, &back,
		   &back_crc) != 4) {
		result_fail(r, "no summary from the host after sending %llu bytes: %s",
			    (unsigned long long)st->tx_bytes, strerror(errno));
		return;
	}
	st->tx_s = now_s() - t0;
	if (host_bytes != st->tx_bytes || host_crc != st->tx_crc)
		result_fail(r, "the host got %llu bytes crc %08x, the guest sent %llu crc %08x",
			    host_bytes, host_crc, (unsigned long long)st->tx_bytes, st->tx_crc);
	t0 = now_s();
	for (;;) {
		ssize_t k = read(s, buf, sizeof(buf));

		if (k < 0) {
			result_fail(r, "receiving from the host after %llu bytes: %s",
				    (unsigned long long)st->rx_bytes, strerror(errno));
			return;
		}
		if (k == 0)
			break;
		st->rx_crc = crc32_update(st->rx_crc, (const uint8_t *)buf, (size_t)k);
		st->rx_bytes += (uint64_t)k;
	}
	st->rx_s = now_s() - t0;
	if (st->rx_bytes != back || st->rx_crc != back_crc)
		result_fail(r, "the guest got %llu bytes crc %08x, the host sent %llu crc %08x",
			    (unsigned long long)st->rx_bytes, st->rx_crc, back, back_crc);
}

/* A listening socket on port, for the host's closing word. */
static int tcp_listen(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		return -1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* Waits (bounded) for the host to connect and say "ping=ok" or "ping=fail". */
static void host_word(int ls, char *word, size_t size)
{
	struct pollfd p = { .fd = ls, .events = POLLIN };
	int c;

	snprintf(word, size, "none");
	if (poll(&p, 1, IO_TIMEOUT_S * 1000) != 1)
		return;
	c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	set_timeouts(c);
	if (read_line(c, word, size) < 0)
		snprintf(word, size, "unreadable");
	close(c);
}

/* The negotiated feature bits of the first virtio-net device, by name, into out. */
static void net_features(char *out, size_t size)
{
	static const struct { unsigned bit; const char *name; } bits[] = {
		{ 0, "csum" }, { 1, "gcsum" }, { 5, "mac" }, { 7, "gtso4" }, { 8, "gtso6" },
		{ 10, "gufo" }, { 11, "htso4" }, { 12, "htso6" }, { 14, "hufo" }, { 15, "mrg" },
		{ 16, "status" }, { 29, "event_idx" },
	};
	char path[300], text[80];
	struct dirent *e;
	DIR *d = opendir("/sys/bus/virtio/devices");
	size_t len = 0;

	snprintf(out, size, "?");
	while (d && (e = readdir(d))) {
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%.200s/device", e->d_name);
		if (read_text(path, text, sizeof(text)) < 0 || strtoul(text, NULL, 0) != 1)
			continue;
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%.200s/features", e->d_name);
		if (read_text(path, text, sizeof(text)) < 0)
			break;
		out[0] = '\0';
		for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
			if (bits[i].bit < strlen(text) && text[bits[i].bit] == '1' && len + 12 < size)
				len += (size_t)snprintf(out + len, size - len, "%s%s", len ? "," : "",
							bits[i].name);
		break;
	}
	if (d)
		closedir(d);
}

/* Bytes per frame the interface counted in one direction ("rx" or "tx"): above 1514, frames
 * bigger than the MTU crossed the device, i.e. segmentation offload worked. */
static unsigned long frame_avg(const char *ifname, const char *dir)
{
	char path[96], text[32];
	unsigned long bytes, packets;

	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s_bytes", ifname, dir);
	if (read_text(path, text, sizeof(text)) < 0)
		return 0;
	bytes = strtoul(text, NULL, 10);
	snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/%s_packets", ifname, dir);
	if (read_text(path, text, sizeof(text)) < 0)
		return 0;
	packets = strtoul(text, NULL, 10);
	return packets ? bytes / packets : 0;
}

static double mbps(uint64_t bytes, double s)
{
	return s > 0 ? (double)bytes * 8 / s / 1e6 : 0;
}

/*
 * kiln.net_ip=ADDR/PREFIX (eth0's address), kiln.net_peer=ADDR (the host's), kiln.net_port=P:
 * the host listens on P; the guest listens on P+1 for the host's word after it pinged the guest.
 * kiln.net_mib=N (default 8): MiB sent to the host. kiln.net_mac=MAC: eth0 must have it.
 * Reports tx_crc=H (the CRC-32 of what it sent) and the rates.
 */
void test_net(const struct agent *a, struct result *r)
{
	char ip[48] = "", peer[48] = "", mac[32] = "", have[32] = "", ifname[IFNAMSIZ] = "";
	char path[80], word[64], feat[128];
	unsigned long port = 0, mib = 8, seed = 1;
	struct stream st = { 0 };
	long echos_before, echos_after;
	int ls, s;

	if (!param_get(a, "net_ip", ip, sizeof(ip)) || !param_get(a, "net_peer", peer, sizeof(peer)) ||
	    param_ulong(a, "net_port", &port) <= 0 || port == 0 || port > 65534 ||
	    param_ulong(a, "net_mib", &mib) < 0 || param_ulong(a, "net_seed", &seed) < 0) {
		result_fail(r, "needs kiln.net_ip=ADDR/PREFIX kiln.net_peer=ADDR kiln.net_port=PORT");
		return;
	}
	if (agent_find_iface(ifname, sizeof(ifname)) < 0) {
		result_fail(r, "no network interface besides lo");
		return;
	}
	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	if (read_text(path, have, sizeof(have)) > 0)
		have[strcspn(have, "\n")] = '\0';
	if (param_get(a, "net_mac", mac, sizeof(mac)) && strcasecmp(mac, have)) {
		result_fail(r, "%s has MAC %s, expected %s", ifname, have, mac);
		return;
	}
	if (if_config(ifname, ip, r) < 0)
		return;
	ls = tcp_listen((unsigned)port + 1);
	if (ls < 0) {
		result_fail(r, "listening on port %lu: %s", port + 1, strerror(errno));
		return;
	}
	if (ping(peer) < 0)
		result_fail(r, "no ping replies from %s", peer);
	echos_before = icmp_in_echos();
	s = r->pass ? tcp_connect(peer, (unsigned)port) : -1;
	if (s < 0 && r->pass)
		result_fail(r, "cannot connect to %s:%lu: %s", peer, port, strerror(errno));
	if (s >= 0) {
		tcp_stream(s, mib, seed ? seed : 1, &st, r);
		close(s);
	}
	/* The host pings once it has its data, then says so. */
	host_word(ls, word, sizeof(word));
	close(ls);
	echos_after = icmp_in_echos();
	if (strcmp(word, "ping=ok"))
		result_fail(r, "the host's word after pinging the guest: %s", word);
	else if (echos_after - echos_before < 3)
		result_fail(r, "the host's pings did not arrive: InEchos %ld -> %ld", echos_before,
			    echos_after);
	net_features(feat, sizeof(feat));
	result_note(r, "%s mac=%s features=%s ping-host=ok tx=%lluB tx_crc=%08x tx_mbps=%.1f "
		       "rx=%lluB rx_crc=%08x rx_mbps=%.1f host-ping-echos=%ld frame_avg tx=%lu rx=%lu",
		    ifname, have, feat, (unsigned long long)st.tx_bytes, st.tx_crc,
		    mbps(st.tx_bytes, st.tx_s), (unsigned long long)st.rx_bytes, st.rx_crc,
		    mbps(st.rx_bytes, st.rx_s), echos_after - echos_before, frame_avg(ifname, "tx"),
		    frame_avg(ifname, "rx"));
}
