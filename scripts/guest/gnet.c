/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gnet: what the test guest's busybox cannot do, in one static binary.
 *
 *   gnet grohw IFACE              print "grohw on|off fixed|changeable"
 *   gnet grohw IFACE on|off       set rx-gro-hw (ETHTOOL_SFEATURES), then
 *                                 print the new state as above
 *   gnet recv ADDR PORT OUT IFACE OFF_AT ON_AT
 *                                 listen on ADDR:PORT (IPv4 or IPv6), print
 *                                 "listening", accept one connection, write
 *                                 everything received to OUT; after OFF_AT
 *                                 bytes turn rx-gro-hw off on IFACE, after
 *                                 ON_AT bytes on again (0: never).  At EOF
 *                                 close and print one "result" line: bytes,
 *                                 IFACE's rx_packets at accept, right after
 *                                 each flip and at EOF, the bytes TCP had
 *                                 received right after each flip (read or
 *                                 still queued), the receive MSS and the
 *                                 rx-gro-hw state.
 *
 * Exit status 0 on success, 1 with a message on stderr otherwise.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define FEATURE_NAME "rx-gro-hw"

static void fail(const char *what)
{
    fprintf(stderr, "gnet: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int ethtool(int fd, const char *ifname, void *data)
{
    struct ifreq ifr;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    ifr.ifr_data = data;
    return ioctl(fd, SIOCETHTOOL, &ifr);
}

/* Index of rx-gro-hw in the device's feature strings; exits if absent. */
static unsigned int grohw_index(int fd, const char *ifname,
                                unsigned int *nfeatures)
{
    struct {
        struct ethtool_sset_info hdr;
        uint32_t len;
    } info;
    struct ethtool_gstrings *strings;
    unsigned int i, n;

    memset(&info, 0, sizeof(info));
    info.hdr.cmd = ETHTOOL_GSSET_INFO;
    info.hdr.sset_mask = 1ULL << ETH_SS_FEATURES;
    if (ethtool(fd, ifname, &info) < 0) {
        fail("ETHTOOL_GSSET_INFO");
    }
    n = info.len;
    strings = calloc(1, sizeof(*strings) + n * ETH_GSTRING_LEN);
    if (!strings) {
        fail("calloc");
    }
    strings->cmd = ETHTOOL_GSTRINGS;
    strings->string_set = ETH_SS_FEATURES;
    strings->len = n;
    if (ethtool(fd, ifname, strings) < 0) {
        fail("ETHTOOL_GSTRINGS");
    }
    for (i = 0; i < n; i++) {
        if (!strncmp((char *)strings->data + i * ETH_GSTRING_LEN,
                     FEATURE_NAME, ETH_GSTRING_LEN)) {
            free(strings);
            *nfeatures = n;
            return i;
        }
    }
    fprintf(stderr, "gnet: %s has no feature %s\n", ifname, FEATURE_NAME);
    exit(1);
}

/* Current rx-gro-hw state: 1 on, 0 off; *changeable if ethtool may flip it. */
static int grohw_get(int fd, const char *ifname, int *changeable)
{
    unsigned int n, i = grohw_index(fd, ifname, &n);
    unsigned int blocks = (n + 31) / 32;
    struct ethtool_gfeatures *g;
    struct ethtool_get_features_block *b;
    int on;

    g = calloc(1, sizeof(*g) + blocks * sizeof(g->features[0]));
    if (!g) {
        fail("calloc");
    }
    g->cmd = ETHTOOL_GFEATURES;
    g->size = blocks;
    if (ethtool(fd, ifname, g) < 0) {
        fail("ETHTOOL_GFEATURES");
    }
    b = &g->features[i / 32];
    on = !!(b->active & (1U << (i % 32)));
    *changeable = (b->available & ~b->never_changed & (1U << (i % 32))) != 0;
    free(g);
    return on;
}

/* Ask for rx-gro-hw on or off; returns the state the device ends up in. */
static int grohw_set(int fd, const char *ifname, int on)
{
    unsigned int n, i = grohw_index(fd, ifname, &n);
    unsigned int blocks = (n + 31) / 32;
    struct ethtool_sfeatures *s;
    int changeable;

    s = calloc(1, sizeof(*s) + blocks * sizeof(s->features[0]));
    if (!s) {
        fail("calloc");
    }
    s->cmd = ETHTOOL_SFEATURES;
    s->size = blocks;
    s->features[i / 32].valid = 1U << (i % 32);
    s->features[i / 32].requested = on ? 1U << (i % 32) : 0;
    if (ethtool(fd, ifname, s) < 0) {
        fail("ETHTOOL_SFEATURES");
    }
    free(s);
    return grohw_get(fd, ifname, &changeable);
}

static unsigned long long rx_packets(const char *ifname)
{
    char path[128];
    unsigned long long v;
    FILE *f;

    snprintf(path, sizeof(path), "/sys/class/net/%s/statistics/rx_packets",
             ifname);
    f = fopen(path, "r");
    if (!f) {
        fail(path);
    }
    if (fscanf(f, "%llu", &v) != 1) {
        fprintf(stderr, "gnet: cannot read %s\n", path);
        exit(1);
    }
    fclose(f);
    return v;
}

static struct tcp_info tcp_info(int fd)
{
    struct tcp_info ti;
    socklen_t sl = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) < 0) {
        fail("TCP_INFO");
    }
    return ti;
}

static int cmd_grohw(int argc, char **argv)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int on, changeable;

    if (fd < 0) {
        fail("socket");
    }
    if (argc == 4) {
        if (strcmp(argv[3], "on") && strcmp(argv[3], "off")) {
            fprintf(stderr, "gnet: grohw wants on or off\n");
            return 1;
        }
        grohw_set(fd, argv[2], !strcmp(argv[3], "on"));
    }
    on = grohw_get(fd, argv[2], &changeable);
    printf("grohw %s %s\n", on ? "on" : "off",
           changeable ? "changeable" : "fixed");
    return 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("write");
        }
        buf += w;
        len -= w;
    }
}

static int cmd_recv(char **argv)
{
    const char *addr = argv[2], *out = argv[4], *ifname = argv[5];
    unsigned long long off_at = strtoull(argv[6], NULL, 0);
    unsigned long long on_at = strtoull(argv[7], NULL, 0);
    unsigned long long total = 0, at_off = 0, at_on = 0;
    unsigned long long rx0, rx_off = 0, rx_on = 0, rx_end;
    int port = atoi(argv[3]), one = 1, ofd, lfd, cfd, changeable, on;
    struct sockaddr_storage ss;
    struct tcp_info ti;
    socklen_t sl;
    int ectl = socket(AF_INET, SOCK_DGRAM, 0);
    static char buf[1 << 18];

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1) {
            fprintf(stderr, "gnet: bad address %s\n", addr);
            return 1;
        }
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1) {
            fprintf(stderr, "gnet: bad address %s\n", addr);
            return 1;
        }
        sl = sizeof(*s4);
    }
    lfd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (lfd < 0 || ectl < 0) {
        fail("socket");
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&ss, sl) < 0) {
        fail("bind");
    }
    if (listen(lfd, 1) < 0) {
        fail("listen");
    }
    ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (ofd < 0) {
        fail(out);
    }
    printf("listening %s %d\n", addr, port);
    fflush(stdout);
    cfd = accept(lfd, NULL, NULL);
    if (cfd < 0) {
        fail("accept");
    }
    close(lfd);
    rx0 = rx_packets(ifname);
    for (;;) {
        ssize_t r = read(cfd, buf, sizeof(buf));

        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            fail("read");
        }
        if (r == 0) {
            break;
        }
        write_all(ofd, buf, r);
        total += r;
        /*
         * Counters sampled once the device has taken the new offloads
         * (the control command completes synchronously): every packet
         * counted after the sample was built under the new setting.
         */
        if (off_at && !at_off && total >= off_at) {
            if (grohw_set(ectl, ifname, 0)) {
                fprintf(stderr, "gnet: rx-gro-hw stayed on\n");
                return 1;
            }
            rx_off = rx_packets(ifname);
            at_off = tcp_info(cfd).tcpi_bytes_received;
        }
        if (on_at && !at_on && total >= on_at) {
            if (!grohw_set(ectl, ifname, 1)) {
                fprintf(stderr, "gnet: rx-gro-hw stayed off\n");
                return 1;
            }
            rx_on = rx_packets(ifname);
            at_on = tcp_info(cfd).tcpi_bytes_received;
        }
    }
    rx_end = rx_packets(ifname);
    ti = tcp_info(cfd);
    close(cfd);
    if (close(ofd) < 0) {
        fail(out);
    }
    on = grohw_get(ectl, ifname, &changeable);
    printf("result bytes=%llu rx0=%llu rx_off=%llu rx_on=%llu rx_end=%llu "
           "at_off=%llu at_on=%llu rcv_mss=%u grohw=%s\n",
           total, rx0, rx_off, rx_on, rx_end, at_off, at_on,
           ti.tcpi_rcv_mss, on ? "on" : "off");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "grohw")) {
        return cmd_grohw(argc, argv);
    }
    if (argc == 8 && !strcmp(argv[1], "recv")) {
        return cmd_recv(argv);
    }
    fprintf(stderr, "usage: gnet grohw IFACE [on|off]\n"
            "       gnet recv ADDR PORT OUT IFACE OFF_AT ON_AT\n");
    return 1;
}
