/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * make demo: a real TCP stream from the Linux kernel through virtio-net
 * receive segment coalescing (RSC)
 *
 * The kernel of a private network namespace sends DEMO_BYTES over TCP to
 * a "guest" at DEMO_GUEST_IP, behind a tap.  The guest is this program,
 * with the driver of the RSC qtest (tests/qtest/virtio-net-rsc-utils.c,
 * negotiating like the Windows netkvm driver): it answers the handshake,
 * checks every payload byte, and ACKs through the device's transmit
 * queue.  Run once with RSC off and once per flush mode; the report is
 * printed as "# demo:" lines of the glib test log.  Where no tap can be
 * made, the same transfer runs as segments the program builds, through
 * the socket backend.
 *
 * Not part of the series: it is a showcase and a rough measure, built by
 * scripts/demo.sh against build/qemu (make demo), and a test of make check.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <net/if_arp.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qobject/qdict.h"
#include "virtio-net-rsc-utils.h"

#define DEMO_HOST_IP        0x0a4d0001  /* 10.77.0.1, the namespace */
#define DEMO_GUEST_IP       0x0a4d0002  /* 10.77.0.2, the guest */
#define DEMO_PORT           5001
#define DEMO_BYTES          (4 * 1024 * 1024)
#define DEMO_ISN            1000
#define DEMO_TX_BUF         128

typedef struct DemoRun {
    const char *name;
    uint32_t interval;      /* rsc_interval */
    bool rsc;               /* RSC on */
    uint64_t segs_in;       /* frames QEMU read from the tap */
    uint64_t pkts_out;      /* TCP packets the guest received */
    uint64_t coalesced;     /* of them with RSC_INFO */
    uint64_t merged;        /* counter segments-merged */
    uint64_t bytes;         /* payload received in order and checked */
    gint64 usecs;           /* wall time of the transfer */
} DemoRun;

typedef struct DemoTcp {
    RscTest *t;
    uint8_t host_mac[6];    /* the tap's address in the namespace */
    uint64_t tx_bufs;       /* guest memory for transmitted frames */
    uint32_t tx_n;          /* frames transmitted */
    uint16_t ip_id;
    uint16_t peer_port;
    uint32_t peer_isn;      /* sequence number of the sender's SYN */
    uint32_t rcv_nxt;
    uint32_t snd_nxt;
    bool synced;            /* SYN seen */
    bool fin;               /* FIN seen and answered */
} DemoTcp;

/* The sender, in a child process: connect, write the stream, close. */
static G_NORETURN void demo_sender(void)
{
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons(DEMO_PORT),
        .sin_addr.s_addr = htonl(DEMO_GUEST_IP),
    };
    uint8_t buf[16384];
    uint32_t off = 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);

    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        _exit(2);
    }
    while (off < DEMO_BYTES) {
        size_t n = MIN(sizeof(buf), DEMO_BYTES - off), i;
        ssize_t w;

        for (i = 0; i < n; i++) {
            buf[i] = rsc_payload_byte(0, off + i);
        }
        w = write(s, buf, n);
        if (w <= 0) {
            _exit(3);
        }
        off += w;
    }
    close(s);
    _exit(0);
}

/* Give the tap an address, the guest a static neighbour entry, TSO off. */
static void demo_net_setup(DemoTcp *d)
{
    RscTest *t = d->t;
    struct ifreq ifr = { 0 };
    struct arpreq arp = { 0 };
    struct ethtool_value ev = { .cmd = ETHTOOL_STSO, .data = 0 };
    struct sockaddr_in *sin;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    g_assert_cmpint(s, >=, 0);
    pstrcpy(ifr.ifr_name, IFNAMSIZ, t->ifname);
    if (gro_fd >= 0) {
        /* a bridge port hands its input to the bridge: leave it */
        struct ifreq br = { 0 };

        pstrcpy(br.ifr_name, IFNAMSIZ, "rscbr0");
        br.ifr_ifindex = if_nametoindex(t->ifname);
        ioctl(s, SIOCBRDELIF, &br);
    }
    sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(DEMO_HOST_IP);
    g_assert_cmpint(ioctl(s, SIOCSIFADDR, &ifr), ==, 0);
    sin->sin_addr.s_addr = htonl(0xffffff00);
    g_assert_cmpint(ioctl(s, SIOCSIFNETMASK, &ifr), ==, 0);
    g_assert_cmpint(ioctl(s, SIOCGIFHWADDR, &ifr), ==, 0);
    memcpy(d->host_mac, ifr.ifr_hwaddr.sa_data, 6);

    sin = (struct sockaddr_in *)&arp.arp_pa;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(DEMO_GUEST_IP);
    arp.arp_ha.sa_family = ARPHRD_ETHER;
    memcpy(arp.arp_ha.sa_data, guest_mac, 6);
    arp.arp_flags = ATF_COM | ATF_PERM;
    pstrcpy(arp.arp_dev, sizeof(arp.arp_dev), t->ifname);
    g_assert_cmpint(ioctl(s, SIOCSARP, &arp), ==, 0);

    /*
     * Without TSO on the tap the kernel segments in software, so QEMU
     * reads MSS-sized frames, as from a physical NIC.
     */
    ifr.ifr_data = (void *)&ev;
    g_assert_cmpint(ioctl(s, SIOCETHTOOL, &ifr), ==, 0);
    close(s);
}

/* Transmit one frame (a 12-byte vnet header is prepended) to the host. */
static void demo_tx(DemoTcp *d, const uint8_t *frame, size_t len)
{
    RscTest *t = d->t;
    uint32_t size = t->tx->size, slot = d->tx_n % size;
    uint64_t buf = d->tx_bufs + (uint64_t)slot * DEMO_TX_BUF;
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    uint8_t desc[16] = { 0 }, vhdr[VNET_HDR_LEN] = { 0 };
    uint16_t le;

    g_assert_cmpuint(len + VNET_HDR_LEN, <=, DEMO_TX_BUF);
    /* do not reuse a slot the device has not consumed yet */
    while (d->tx_n >= size &&
           (uint16_t)(used_idx(t, t->tx) - (d->tx_n - size)) == 0) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("the device does not consume transmitted frames");
        }
    }
    qtest_memwrite(t->qts, buf, vhdr, sizeof(vhdr));
    qtest_memwrite(t->qts, buf + VNET_HDR_LEN, frame, len);
    stq_le_p(desc, buf);
    stl_le_p(desc + 8, len + VNET_HDR_LEN);
    qtest_memwrite(t->qts, t->tx->desc + 16 * slot, desc, sizeof(desc));
    le = cpu_to_le16(slot);
    qtest_memwrite(t->qts, t->tx->avail + 4 + 2 * (d->tx_n % size), &le, 2);
    d->tx_n++;
    le = cpu_to_le16(d->tx_n);
    qtest_memwrite(t->qts, t->tx->avail + 2, &le, 2);
    t->vdev->bus->virtqueue_kick(t->vdev, t->tx);
}

/* Send a segment without payload from the guest to the sender. */
static void demo_send_tcp(DemoTcp *d, uint8_t flags, bool mss_option)
{
    static const uint8_t mss[] = { 2, 4, 1460 >> 8, 1460 & 0xff };
    RscSeg s = {
        .dst_mac = d->host_mac, .src_mac = guest_mac,
        .ttl = 64, .df = true, .ip_id = d->ip_id++,
        .sport = DEMO_PORT, .dport = d->peer_port,
        .seq = d->snd_nxt, .ack = d->rcv_nxt, .flags = flags, .win = 65535,
        .opts = mss, .opts_len = mss_option ? sizeof(mss) : 0,
    };
    uint8_t f[ETH_HLEN + IP4_HLEN + TCP_HLEN + sizeof(mss)];

    stl_be_p(s.src_ip, DEMO_GUEST_IP);
    stl_be_p(s.dst_ip, DEMO_HOST_IP);
    demo_tx(d, f, rsc_seg_build(&s, f));
    if (flags & (TCP_SYN | TCP_FIN)) {
        d->snd_nxt++;
    }
}

/* Handle one packet the guest received; count it in @r. */
static void demo_rx(DemoTcp *d, DemoRun *r, const RxPacket *p)
{
    const uint8_t *ip = p->data + ETH_HLEN;
    RscSegView v;
    uint32_t off;
    long bad;

    if (p->len < ETH_HLEN + IP4_HLEN ||
        lduw_be_p(p->data + 12) != ETH_P_IP || ip[9] != 6 ||
        ldl_be_p(ip + 16) != DEMO_GUEST_IP) {
        return;     /* not of the stream */
    }
    if (!rsc_seg_parse(p->data, p->len, &v) || v.dport != DEMO_PORT) {
        rsc_fail("demo: unexpected packet of %zu bytes", p->len);
    }
    r->pkts_out++;
    if (p->hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        r->coalesced++;
        if (!rsc_seg_ip_csum_ok(p->data, &v)) {
            rsc_fail("demo: coalesced packet with a bad IPv4 checksum");
        }
        if (!rsc_seg_tcp_csum_ok(p->data, &v, true)) {
            rsc_fail("demo: coalesced packet without the pseudo-header "
                     "sum in its TCP checksum field");
        }
    }

    if (v.flags & TCP_SYN) {
        d->peer_port = v.sport;
        d->peer_isn = v.seq;
        d->rcv_nxt = v.seq + 1;
        d->snd_nxt = DEMO_ISN;
        d->synced = true;
        demo_send_tcp(d, TCP_SYN | TCP_ACK, true);
        return;
    }
    if (!d->synced) {
        return;
    }
    if (v.plen && v.seq == d->rcv_nxt) {
        off = v.seq - d->peer_isn - 1;
        bad = rsc_payload_mismatch(p->data + v.hdr_len, v.plen, 0, off);
        if (bad >= 0) {
            rsc_fail("demo: stream byte %u is 0x%02x, expected 0x%02x",
                     off + (uint32_t)bad, p->data[v.hdr_len + bad],
                     rsc_payload_byte(0, off + bad));
        }
        d->rcv_nxt += v.plen;
        r->bytes += v.plen;
    }
    if ((v.flags & TCP_FIN) && v.seq + v.plen == d->rcv_nxt && !d->fin) {
        d->rcv_nxt++;
        d->fin = true;
        demo_send_tcp(d, TCP_FIN | TCP_ACK, false);
        return;
    }
    demo_send_tcp(d, TCP_ACK, false);
}

static void demo_run(DemoRun *r)
{
    RscOpts o = { .interval = r->interval, .burst = !r->interval,
                  .tap = true };
    DemoTcp d = { 0 };
    RscTest *t = rsc_start(&o);
    uint64_t read0;
    uint32_t shown = 0;
    gint64 start, deadline;
    int status = 0;
    pid_t pid;

    d.t = t;
    if (!r->rsc) {
        /* netkvm turns RSC off by clearing TSO4/TSO6, keeping bit 61 */
        g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                       BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                         VIRTIO_NET_OK);
    }
    d.tx_bufs = guest_alloc(&t->alloc, (uint64_t)t->tx->size * DEMO_TX_BUF);
    demo_net_setup(&d);
    read0 = tap_frames_read(t);

    g_test_message("demo: %s: %u KiB from the kernel's TCP to the guest",
                   r->name, DEMO_BYTES / 1024);
    start = g_get_monotonic_time();
    deadline = start + 120 * G_USEC_PER_SEC;
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        demo_sender();
    }
    while (!d.fin || r->bytes < DEMO_BYTES) {
        if (rx_ready(t)) {
            RxPacket p;

            rx_pop(t, &p);
            demo_rx(&d, r, &p);
            rx_packet_free(&p);
            if (r->bytes >= shown + DEMO_BYTES / 4) {
                shown = r->bytes - r->bytes % (DEMO_BYTES / 4);
                g_test_message("demo: %s: %3u%%  %" PRIu64 " packets",
                               r->name, shown / (DEMO_BYTES / 100),
                               r->pkts_out);
            }
            continue;
        }
        if (g_get_monotonic_time() > deadline) {
            kill(pid, SIGKILL);
            rsc_fail("demo: %s: transfer stalled at %" PRIu64 " bytes",
                     r->name, r->bytes);
        }
        if (r->interval) {
            /* virtual time only moves when the test says so */
            qtest_clock_step(t->qts, r->interval / 4);
        }
    }
    r->usecs = g_get_monotonic_time() - start;
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        rsc_fail("demo: the sender failed (status 0x%x)", status);
    }
    r->segs_in = tap_frames_read(t) - read0;
    r->merged = rsc_stat(t, "segments-merged");
    if (g_test_verbose() || getenv("RSC_DEMO")) {
        g_autoptr(QDict) s = rsc_stats(t);
        const QDictEntry *e;

        for (e = qdict_first(s); e; e = qdict_next(s, e)) {
            uint64_t v = stats_get(s, qdict_entry_key(e));

            if (v) {
                g_test_message("demo: %s: rsc-stats %-20s %" PRIu64,
                               r->name, qdict_entry_key(e), v);
            }
        }
    }
    rsc_end(t);
}

/* Count and check a packet of the synthetic stream of @c. */
static void demo_rx_socket(DemoRun *r, Conn *c, const RxPacket *p)
{
    RscSegView v;
    uint32_t off;
    long bad;

    if (!rsc_seg_parse(p->data, p->len, &v)) {
        rsc_fail("demo: a %zu-byte packet that is not TCP/IP", p->len);
    }
    off = v.seq - c->isn;
    g_assert_cmpuint(off, ==, r->bytes);
    bad = rsc_payload_mismatch(p->data + v.hdr_len, v.plen, c->idx, off);
    if (bad >= 0) {
        rsc_fail("demo: stream byte %u is 0x%02x, expected 0x%02x",
                 off + (uint32_t)bad, p->data[v.hdr_len + bad],
                 rsc_payload_byte(c->idx, off + bad));
    }
    r->bytes += v.plen;
    r->pkts_out++;
    if (p->hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        r->coalesced++;
    }
}

/*
 * Without a tap there is no kernel TCP stream: the same transfer as
 * segments the test builds itself, written to the socket backend in
 * bursts of 32, as a sender with a 46 KiB window would.
 */
static void demo_run_socket(DemoRun *r)
{
    RscOpts o = { .interval = r->interval, .burst = !r->interval };
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    uint32_t sent = 0;
    gint64 start;

    if (!r->rsc) {
        g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                       BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                         VIRTIO_NET_OK);
    }
    start = g_get_monotonic_time();
    while (sent < DEMO_BYTES) {
        Frame *f[32];
        unsigned n = 0;

        while (n < ARRAY_SIZE(f) && sent < DEMO_BYTES) {
            f[n] = seg(t, c, MIN(MSS, DEMO_BYTES - sent));
            sent += f[n++]->plen;
        }
        send_frames(t, f, n);
        r->segs_in += n;
        if (r->interval) {
            clock_step(t, r->interval);
        }
        /* the sender waits for the window: everything sent arrives */
        while (r->bytes < sent) {
            RxPacket p;

            rx_pop(t, &p);
            demo_rx_socket(r, c, &p);
            rx_packet_free(&p);
        }
    }
    r->usecs = g_get_monotonic_time() - start;
    r->merged = rsc_stat(t, "segments-merged");
    rsc_end(t);
}

static void test_demo_kernel_tcp(void)
{
    DemoRun runs[] = {
        { .name = "RSC off", .interval = 0, .rsc = false },
        { .name = "rsc_interval=300000", .interval = 300000, .rsc = true },
        { .name = "rsc_interval=0", .interval = 0, .rsc = true },
    };
    unsigned i;

    if (tap_unavailable) {
        g_test_message("demo: no tap here (%s): falling back to the socket "
                       "backend with segments the test builds",
                       tap_unavailable);
    }
    for (i = 0; i < ARRAY_SIZE(runs); i++) {
        if (tap_unavailable) {
            demo_run_socket(&runs[i]);
        } else {
            demo_run(&runs[i]);
        }
        g_assert_cmpuint(runs[i].bytes, ==, DEMO_BYTES);
        if (runs[i].rsc) {
            /* the feature must be visible in a real stream */
            g_assert_cmpuint(runs[i].coalesced, >, 0);
            g_assert_cmpuint(runs[i].merged, >, 0);
        } else {
            g_assert_cmpuint(runs[i].coalesced, ==, 0);
        }
    }
    g_test_message("demo: report (%u KiB, one TCP connection, MSS 1448, "
                   "%s)", DEMO_BYTES / 1024,
                   tap_unavailable ? "socket backend, synthetic segments" :
                   "tap backend, the kernel's TCP stack");
    g_test_message("demo: %-22s %10s %12s %10s %10s %8s", "", "segs in",
                   "packets out", "segs/pkt", "coalesced", "MiB/s");
    for (i = 0; i < ARRAY_SIZE(runs); i++) {
        DemoRun *r = &runs[i];

        g_test_message("demo: %-22s %10" PRIu64 " %12" PRIu64 " %10.2f "
                       "%10" PRIu64 " %8.1f", r->name, r->segs_in,
                       r->pkts_out, (double)r->segs_in / r->pkts_out,
                       r->coalesced,
                       (double)r->bytes / r->usecs * 1e6 / (1 << 20));
    }
}

int main(int argc, char **argv)
{
    /* before anything can start a thread */
    tap_netns_setup();
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("virtio-net-rsc/demo/kernel-tcp", test_demo_kernel_tcp);
    return g_test_run();
}
