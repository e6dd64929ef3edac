/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net receive segment coalescing (RSC) with several
 * queues, RSS and hash reports
 *
 * The guest side negotiates like the Windows netkvm driver does on a
 * multi-queue adapter: MQ, RSS, HASH_REPORT, CTRL_VQ, CTRL_GUEST_OFFLOADS,
 * GUEST_CSUM, GUEST_TSO4/6 and RSC_EXT; it configures RSS through
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG with a Toeplitz key and an indirection
 * table that spreads the test's connections over every receive queue,
 * and reads the 20-byte virtio_net_hdr_v1_hash of every packet.
 *
 * The backend is a multi-queue tap (IFF_MULTI_QUEUE, one fd per queue
 * pair, -netdev tap,fds=) in a private network namespace; frames are
 * injected with an AF_PACKET socket bound to it.  The socket backend has a
 * single queue and QEMU offers no hash reports without vnet headers, so
 * through it the test runs one queue pair with RSS, without hash reports.
 * Ring layouts: split and packed (the test has its own packed-ring
 * driver), receive buffers as one descriptor, an indirect table or a
 * chain, event index on or off, and VIRTIO_F_IN_ORDER.
 *
 * Every payload byte is a function of (connection, sequence offset).  The
 * checker maps each received packet back to the segments it must have
 * been built from: its connection must be steered to the queue it came
 * on (the test computes the Toeplitz hash itself), it must start where
 * the previous packet of its connection ended, and every byte of it, its
 * vnet header and its hash report must be what the device has to make of
 * those segments.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sched.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qnum.h"
#include "libqos/malloc-pc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ids.h"
#include "standard-headers/linux/virtio_net.h"
#include "standard-headers/linux/virtio_ring.h"

#define MQ_TIMEOUT_US       (30 * G_USEC_PER_SEC)
#define MQ_INTERVAL         1000000     /* ns, rsc_interval as in HLK runs */
#define MQ_PCI_SLOT         4
#define MQ_MAX_PAIRS        4
#define MQ_RING_SIZE        256
#define MQ_BUF_SIZE         (64 * 1024 + 64)
#define MQ_MRG_BUF_SIZE     4096

#define HASH_HDR_LEN        20          /* struct virtio_net_hdr_v1_hash */
#define V1_HDR_LEN          12          /* struct virtio_net_hdr_v1 */
#define IP4_HLEN            20
#define IP6_HLEN            40
#define TCP_HLEN            32          /* with NOP, NOP, timestamps */
#define MSS                 1448

#define TCP_FIN             0x01
#define TCP_PSH             0x08
#define TCP_ACK             0x10

#define RSS_KEY_LEN         40
#define RSS_TABLE_LEN       128
#define RSS_HASH_TYPES      (VIRTIO_NET_RSS_HASH_TYPE_IPv4 | \
                             VIRTIO_NET_RSS_HASH_TYPE_TCPv4 | \
                             VIRTIO_NET_RSS_HASH_TYPE_IPv6 | \
                             VIRTIO_NET_RSS_HASH_TYPE_TCPv6)

#define BIT(n)              (1ULL << (n))
#define RSC_OFFLOADS        (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO6) | \
                             BIT(VIRTIO_NET_F_RSC_EXT))
/* netkvm turns RSC off by clearing TSO4/TSO6, keeping the RSC_EXT bit */
#define RSC_OFF_OFFLOADS    (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_RSC_EXT))
#define MQ_FEATURES         (BIT(VIRTIO_F_VERSION_1) | \
                             BIT(VIRTIO_NET_F_CTRL_VQ) | \
                             BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | \
                             BIT(VIRTIO_NET_F_MQ) | \
                             BIT(VIRTIO_NET_F_RSS) | \
                             RSC_OFFLOADS)

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

/* The Toeplitz key of Microsoft's RSS verification suite. */
static const uint8_t rss_key[RSS_KEY_LEN] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
    0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
    0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/* Why the tap cases cannot run here, or NULL. */
static char *tap_unavailable;

/* How a case wants the device and the driver set up. */
typedef struct MqOpts {
    unsigned pairs;         /* queue pairs; the socket backend has 1 */
    bool tap;               /* multi-queue tap, else the socket backend */
    uint32_t interval;      /* rsc_interval, ns */
    bool mergeable;         /* negotiate MRG_RXBUF, 4 KiB buffers */
    bool in_order;          /* in_order=on, negotiate VIRTIO_F_IN_ORDER */
    bool hash;              /* negotiate VIRTIO_NET_F_HASH_REPORT */
    bool packed;            /* packed=on, negotiate VIRTIO_F_RING_PACKED */
    bool indirect;          /* receive buffers as indirect descriptors */
    bool chain;             /* receive buffers as chains of 2 descriptors */
    bool no_event_idx;      /* do not negotiate VIRTIO_RING_F_EVENT_IDX */
    uint32_t buf_size;      /* receive buffer bytes, 0: the default */
} MqOpts;

/* A TCP connection from the peer to the guest. */
typedef struct Conn {
    unsigned idx;
    bool v6;
    uint8_t saddr[16], daddr[16];
    uint16_t sport, dport;
    uint32_t isn;
    uint32_t next_off;      /* sequence offset of the next segment */
    uint32_t ack;
    uint32_t tsval;
    uint16_t ip_id;
    uint32_t hash;          /* Toeplitz hash the test computed */
    unsigned queue;         /* receive queue RSS must steer it to */
    GPtrArray *segs;        /* Frame *, data segments sent, in order */
    unsigned next;          /* segments received so far */
    unsigned packets;       /* packets received so far */
    unsigned coalesced;     /* packets received with RSC_INFO */
    uint32_t single_hash;   /* hash report of the last segment alone */
    uint16_t single_report;
    uint32_t unit_hash;     /* hash report of the last coalesced packet */
    uint16_t unit_report;
} Conn;

/* A TCP segment the test built. */
typedef struct Frame {
    uint8_t *data;
    size_t len;
    Conn *conn;
    uint32_t off;           /* sequence offset of its payload */
    uint32_t plen;          /* payload bytes */
    size_t l4;              /* offset of the TCP header */
    size_t hdr_len;         /* Ethernet + IP + TCP header bytes */
} Frame;

/* One receive queue of the driver. */
typedef struct MqQueue {
    QVirtQueue *rx, *tx;
    unsigned nbuf;          /* rx buffers: ring size, half with chains */
    uint64_t bufs;          /* guest memory of the rx buffers */
    uint64_t itab;          /* their indirect descriptor tables */
    uint16_t avail_idx;     /* split: rx avail index written; packed: slot */
    uint16_t used_idx;      /* split: rx used entries consumed; packed: slot */
    bool avail_wrap;        /* packed: driver ring wrap counter */
    bool used_wrap;         /* packed: used wrap counter */
    bool repost;            /* give buffers back after reading them */
    uint16_t posted[2 * MQ_RING_SIZE];  /* ids in the order made available */
    unsigned npost, nused;  /* ids made available, used */
} MqQueue;

typedef struct MqTest {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *vpci;
    QVirtioDevice *vdev;
    QVirtQueue *ctrl;
    MqQueue q[MQ_MAX_PAIRS];
    MqOpts opts;
    uint32_t buf_size;
    uint32_t hdr_len;       /* vnet header bytes in receive buffers */
    int sock;               /* our end of the socketpair, or -1 */
    int pkt;                /* AF_PACKET socket on the tap, or -1 */
    int tapfd[MQ_MAX_PAIRS];
    char ifname[IFNAMSIZ];
    unsigned nsent;         /* frames given to the backend */
    uint64_t ctrl_buf;
    uint16_t ctrl_slot;     /* packed: next free slot of the control queue */
    bool ctrl_wrap;         /* packed: its wrap counter */
    uint16_t table[RSS_TABLE_LEN];
    GPtrArray *conns;       /* Conn * */
    GPtrArray *frames;      /* Frame *, every frame built */
} MqTest;

G_GNUC_PRINTF(4, 5) G_NORETURN
static void mq_fail_at(const char *file, int line, const char *func,
                       const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_assertion_message(G_LOG_DOMAIN, file, line, func, msg);
    abort();
}

#define mq_fail(...) mq_fail_at(__FILE__, __LINE__, G_STRFUNC, __VA_ARGS__)

/* --- Toeplitz hash ------------------------------------------------------- */

/*
 * The Toeplitz hash of @in/@len under @key: for every set input bit, the
 * 32 key bits starting at that bit position are XORed into the result.
 */
static uint32_t toeplitz(const uint8_t *key, size_t key_len,
                         const uint8_t *in, size_t len)
{
    uint32_t hash = 0, window = ldl_be_p(key);
    size_t i;
    int b;

    g_assert_cmpuint(len + 4, <=, key_len);
    for (i = 0; i < len; i++) {
        for (b = 7; b >= 0; b--) {
            if (in[i] & (1 << b)) {
                hash ^= window;
            }
            window = window << 1 | ((key[i + 4] >> b) & 1);
        }
    }
    return hash;
}

/* The RSS hash of a TCP connection: addresses, then ports. */
static uint32_t conn_toeplitz(const uint8_t *saddr, const uint8_t *daddr,
                              bool v6, uint16_t sport, uint16_t dport)
{
    uint8_t in[36];
    size_t alen = v6 ? 16 : 4;

    memcpy(in, saddr, alen);
    memcpy(in + alen, daddr, alen);
    stw_be_p(in + 2 * alen, sport);
    stw_be_p(in + 2 * alen + 2, dport);
    return toeplitz(rss_key, sizeof(rss_key), in, 2 * alen + 4);
}

/*
 * The test's own hash against the verification values Microsoft publishes
 * for this key, so that a wrong expectation cannot pass for a device bug.
 */
static void test_toeplitz_reference(void)
{
    static const uint8_t s4[4] = { 66, 9, 149, 187 };
    static const uint8_t d4[4] = { 161, 142, 100, 80 };
    static const uint8_t s6[16] = { 0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00,
                                    0x1f, 0xff, [15] = 7 };
    static const uint8_t d6[16] = { 0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00,
                                    0x00, 0x03, [15] = 1 };

    g_assert_cmphex(conn_toeplitz(s4, d4, false, 2794, 1766), ==,
                    0x51ccc178);
    g_assert_cmphex(conn_toeplitz(s6, d6, true, 2794, 1766), ==,
                    0x40207d3d);
}

/* --- frames -------------------------------------------------------------- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len; i += 2) {
        sum += (p[i] << 8) | p[i + 1];
    }
    if (len & 1) {
        sum += p[len - 1] << 8;
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

static uint32_t pseudo_sum(const uint8_t *l3, bool v6, uint32_t tcp_len)
{
    uint32_t sum = 6 + (tcp_len >> 16) + (tcp_len & 0xffff);

    return v6 ? csum_add(sum, l3 + 8, 32) : csum_add(sum, l3 + 12, 8);
}

/* The payload byte at sequence offset @off of connection @conn. */
static uint8_t payload_byte(unsigned conn, uint32_t off)
{
    uint32_t x = (off + 1) * 0x9e3779b1u ^ (conn + 1) * 0x85ebca6bu;

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static void frame_free(gpointer p)
{
    Frame *f = p;

    g_free(f->data);
    g_free(f);
}

/*
 * A new connection whose Toeplitz hash the indirection table maps to
 * @queue: source ports are tried in turn from a per-connection start.
 */
static Conn *conn_new(MqTest *t, bool v6, unsigned queue)
{
    Conn *c = g_new0(Conn, 1);
    unsigned i;

    c->idx = t->conns->len;
    c->v6 = v6;
    if (v6) {
        c->saddr[0] = c->daddr[0] = 0xfd;
        c->saddr[13] = c->idx;
        c->saddr[15] = 1;
        c->daddr[15] = 2;
    } else {
        c->saddr[0] = c->daddr[0] = 10;
        c->saddr[2] = c->idx;
        c->saddr[3] = 1;
        c->daddr[3] = 2;
    }
    c->dport = 5001;
    for (i = 0; i < 4096; i++) {
        c->sport = 20000 + 37 * c->idx + i;
        c->hash = conn_toeplitz(c->saddr, c->daddr, v6, c->sport, c->dport);
        c->queue = t->table[c->hash % RSS_TABLE_LEN];
        if (c->queue == queue) {
            break;
        }
    }
    g_assert_cmpuint(c->queue, ==, queue);
    c->isn = 0x10000000u * (c->idx % 15 + 1) + 0x1234 * c->idx + 77;
    c->ack = 0x50000000u + 0x100 * c->idx;
    c->tsval = 1000 + c->idx;
    c->ip_id = 0x100 * c->idx + 1;
    c->segs = g_ptr_array_new();
    g_ptr_array_add(t->conns, c);
    return c;
}

static void conn_free(gpointer p)
{
    Conn *c = p;

    g_ptr_array_unref(c->segs);
    g_free(c);
}

/* The next segment of @c: @plen payload bytes and TCP @flags. */
static Frame *seg_flags(MqTest *t, Conn *c, uint32_t plen, uint8_t flags)
{
    size_t ip_len = c->v6 ? IP6_HLEN : IP4_HLEN;
    size_t dgram = ip_len + TCP_HLEN + plen;
    Frame *f = g_new0(Frame, 1);
    uint8_t *p, *ip, *tcp;
    uint32_t i, sum;

    f->len = ETH_HLEN + dgram;
    f->data = p = g_malloc0(f->len);
    f->conn = c;
    f->off = c->next_off;
    f->plen = plen;
    f->l4 = ETH_HLEN + ip_len;
    f->hdr_len = f->l4 + TCP_HLEN;
    c->next_off += plen;
    g_ptr_array_add(t->frames, f);

    memcpy(p, guest_mac, 6);
    memcpy(p + 6, peer_mac, 6);
    stw_be_p(p + 12, c->v6 ? ETH_P_IPV6 : ETH_P_IP);
    ip = p + ETH_HLEN;
    if (c->v6) {
        stl_be_p(ip, 6u << 28);
        stw_be_p(ip + 4, dgram - IP6_HLEN);
        ip[6] = IPPROTO_TCP;
        ip[7] = 64;
        memcpy(ip + 8, c->saddr, 16);
        memcpy(ip + 24, c->daddr, 16);
    } else {
        ip[0] = 0x45;
        stw_be_p(ip + 2, dgram);
        stw_be_p(ip + 4, c->ip_id++);
        stw_be_p(ip + 6, 0x4000);
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        memcpy(ip + 12, c->saddr, 4);
        memcpy(ip + 16, c->daddr, 4);
        stw_be_p(ip + 10, ~csum_fold(csum_add(0, ip, IP4_HLEN)) & 0xffff);
    }
    tcp = p + f->l4;
    stw_be_p(tcp, c->sport);
    stw_be_p(tcp + 2, c->dport);
    stl_be_p(tcp + 4, c->isn + f->off);
    stl_be_p(tcp + 8, c->ack);
    tcp[12] = (TCP_HLEN / 4) << 4;
    tcp[13] = flags;
    stw_be_p(tcp + 14, 502);
    tcp[20] = 1;
    tcp[21] = 1;
    tcp[22] = 8;
    tcp[23] = 10;
    stl_be_p(tcp + 24, c->tsval);
    stl_be_p(tcp + 28, 500);
    for (i = 0; i < plen; i++) {
        tcp[TCP_HLEN + i] = payload_byte(c->idx, f->off + i);
    }
    sum = pseudo_sum(ip, c->v6, TCP_HLEN + plen);
    sum = csum_add(sum, tcp, TCP_HLEN + plen);
    stw_be_p(tcp + 16, ~csum_fold(sum) & 0xffff);
    if (plen) {
        g_ptr_array_add(c->segs, f);
    }
    return f;
}

static Frame *seg(MqTest *t, Conn *c, uint32_t plen)
{
    return seg_flags(t, c, plen, TCP_ACK);
}

/*
 * The packet the device must make of @n segments of @c from index
 * @first: the frame (returned) and the 10-byte vnet header.  A single
 * segment goes out untouched, with an all-zero header.
 */
static GByteArray *expected_packet(Conn *c, unsigned first, unsigned n,
                                   uint8_t *vhdr)
{
    Frame *f0 = g_ptr_array_index(c->segs, first);
    Frame *last = g_ptr_array_index(c->segs, first + n - 1);
    GByteArray *u = g_byte_array_new();
    size_t l3 = ETH_HLEN, l4 = f0->l4, hl = f0->hdr_len;
    uint32_t total = 0;
    uint8_t *tcp;
    unsigned i;

    memset(vhdr, 0, 10);
    if (n == 1) {
        g_byte_array_append(u, f0->data, f0->len);
        return u;
    }
    g_byte_array_append(u, f0->data, hl);
    for (i = 0; i < n; i++) {
        Frame *f = g_ptr_array_index(c->segs, first + i);

        g_byte_array_append(u, f->data + f->hdr_len, f->plen);
        total += f->plen;
        u->data[l4 + 13] |= f->data[f->l4 + 13] & TCP_PSH;
    }
    if (c->v6) {
        stw_be_p(u->data + l3 + 4, hl - l4 + total);
    } else {
        stw_be_p(u->data + l3 + 2, hl - l3 + total);
        stw_be_p(u->data + l3 + 10, 0);
        stw_be_p(u->data + l3 + 10,
                 ~csum_fold(csum_add(0, u->data + l3, IP4_HLEN)) & 0xffff);
    }
    tcp = u->data + l4;
    memcpy(tcp + 8, last->data + last->l4 + 8, 4);      /* ACK */
    memcpy(tcp + 14, last->data + last->l4 + 14, 2);    /* window */
    memcpy(tcp + 24, last->data + last->l4 + 24, 8);    /* timestamps */
    stw_be_p(tcp + 16, csum_fold(pseudo_sum(u->data + l3, c->v6,
                                            hl - l4 + total)));
    vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    vhdr[1] = c->v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    stw_le_p(vhdr + 2, hl);
    stw_le_p(vhdr + 4, f0->plen);
    stw_le_p(vhdr + 6, n);
    return u;
}

/* --- the multi-queue tap ------------------------------------------------- */

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t r = -1;

    if (fd >= 0) {
        r = write(fd, text, strlen(text));
        close(fd);
    }
    return r == strlen(text);
}

/*
 * Create a tap with @n queues (IFF_MULTI_QUEUE) and vnet headers, set it
 * up without multicast, and bind an AF_PACKET socket to it.  Returns
 * false with *@err set (the kernel's reason) when it cannot.
 */
static bool mq_tap_open(MqTest *t, unsigned n, char **err);

/*
 * Attach @n more queues to the test's tap, in @fds: the backend of a
 * migration destination.  Fails the test if the kernel refuses.
 */
static void mq_tap_attach(MqTest *t, unsigned n, int *fds)
{
    struct ifreq ifr = { 0 };
    unsigned i;

    for (i = 0; i < n; i++) {
        fds[i] = open("/dev/net/tun", O_RDWR);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        pstrcpy(ifr.ifr_name, IFNAMSIZ, t->ifname);
        if (fds[i] < 0 || ioctl(fds[i], TUNSETIFF, &ifr) < 0) {
            mq_fail("attaching queue %u to %s: %s", i, t->ifname,
                    strerror(errno));
        }
    }
}

static bool mq_tap_open(MqTest *t, unsigned n, char **err)
{
    struct ifreq ifr = { 0 };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET };
    const char *step = "open /dev/net/tun";
    unsigned i;
    int s;

    for (i = 0; i < n; i++) {
        t->tapfd[i] = open("/dev/net/tun", O_RDWR);
        if (t->tapfd[i] < 0) {
            goto fail;
        }
        step = "TUNSETIFF with IFF_MULTI_QUEUE";
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        pstrcpy(ifr.ifr_name, IFNAMSIZ, i ? t->ifname : "rscmq%d");
        if (ioctl(t->tapfd[i], TUNSETIFF, &ifr) < 0) {
            close(t->tapfd[i]);
            t->tapfd[i] = -1;
            goto fail;
        }
        pstrcpy(t->ifname, IFNAMSIZ, ifr.ifr_name);
    }
    step = "setting the tap up";
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifr.ifr_mtu = 9000;
    if (s < 0 || ioctl(s, SIOCSIFMTU, &ifr) < 0 ||
        ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        goto fail_s;
    }
    ifr.ifr_flags = (ifr.ifr_flags | IFF_UP) & ~IFF_MULTICAST;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        goto fail_s;
    }
    close(s);
    step = "an AF_PACKET socket on the tap";
    t->pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    sll.sll_ifindex = if_nametoindex(t->ifname);
    if (t->pkt < 0 || bind(t->pkt, (struct sockaddr *)&sll, sizeof(sll))) {
        goto fail;
    }
    return true;

fail_s:
    if (s >= 0) {
        close(s);
    }
fail:
    *err = g_strdup_printf("%s: %s", step, strerror(errno));
    for (i = 0; i < n; i++) {
        if (t->tapfd[i] >= 0) {
            close(t->tapfd[i]);
            t->tapfd[i] = -1;
        }
    }
    if (t->pkt >= 0) {
        close(t->pkt);
        t->pkt = -1;
    }
    return false;
}

/*
 * Enter a private network namespace (and a user namespace when not root)
 * before any thread exists, and check that a multi-queue tap can be made
 * there; if not, tap_unavailable says why (the kernel's reason).
 */
static void netns_setup(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    g_autofree char *umap = g_strdup_printf("0 %u 1", uid);
    g_autofree char *gmap = g_strdup_printf("0 %u 1", gid);
    g_autofree char *err = NULL;
    MqTest probe = { .pkt = -1 };
    unsigned i;

    if (getenv("RSC_TEST_NO_TAP")) {
        tap_unavailable = g_strdup("RSC_TEST_NO_TAP is set");
        return;
    }
    if (unshare(CLONE_NEWNET | (uid ? CLONE_NEWUSER : 0)) < 0) {
        tap_unavailable = g_strdup_printf("the kernel refused a private "
                                          "network namespace: unshare(%s):"
                                          " %s", uid ? "CLONE_NEWUSER | "
                                          "CLONE_NEWNET" : "CLONE_NEWNET",
                                          strerror(errno));
        return;
    }
    if (uid && (!write_file("/proc/self/setgroups", "deny") ||
                !write_file("/proc/self/uid_map", umap) ||
                !write_file("/proc/self/gid_map", gmap))) {
        tap_unavailable = g_strdup_printf("mapping the user in a user "
                                          "namespace: %s", strerror(errno));
        return;
    }
    /* no IPv6 autoconfiguration traffic on the tap */
    write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    for (i = 0; i < MQ_MAX_PAIRS; i++) {
        probe.tapfd[i] = -1;
    }
    if (!mq_tap_open(&probe, MQ_MAX_PAIRS, &err)) {
        tap_unavailable = g_strdup_printf("the kernel refused a multi-queue "
                                          "tap in a private network "
                                          "namespace: %s", err);
        return;
    }
    for (i = 0; i < MQ_MAX_PAIRS; i++) {
        close(probe.tapfd[i]);
    }
    close(probe.pkt);
}

/* Frames QEMU has read from the tap: tun counts them as transmitted. */
static uint64_t tap_frames_read(MqTest *t)
{
    struct ifaddrs *ifa, *i;
    uint64_t n = 0;

    g_assert_cmpint(getifaddrs(&ifa), ==, 0);
    for (i = ifa; i; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET &&
            i->ifa_data && !strcmp(i->ifa_name, t->ifname)) {
            n = ((struct rtnl_link_stats *)i->ifa_data)->tx_packets;
        }
    }
    freeifaddrs(ifa);
    return n;
}

/* --- the device and the driver ------------------------------------------- */

static uint16_t used_idx(MqTest *t, QVirtQueue *vq)
{
    return qtest_readw(t->qts, vq->used + 2);
}

static void rx_kick(MqTest *t, unsigned qi)
{
    t->vdev->bus->virtqueue_kick(t->vdev, t->q[qi].rx);
}

#define PACKED_F_AVAIL      (1 << 7)
#define PACKED_F_USED       (1 << 15)

/* Packed ring: the flags that make a descriptor available now. */
static uint16_t packed_avail_flags(bool wrap)
{
    return wrap ? PACKED_F_AVAIL : PACKED_F_USED;
}

/* Write a 16-byte descriptor; for packed rings @next is the buffer id. */
static void desc_write(MqTest *t, uint64_t a, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    uint8_t d[16];

    stq_le_p(d, addr);
    stl_le_p(d + 8, len);
    if (t->opts.packed) {
        stw_le_p(d + 12, next);
        stw_le_p(d + 14, flags);
    } else {
        stw_le_p(d + 12, flags);
        stw_le_p(d + 14, next);
    }
    qtest_memwrite(t->qts, a, d, sizeof(d));
}

/*
 * Make receive buffer @b of queue @qi available (no kick): one
 * descriptor, an indirect table of two, or a chain of two (the 20-byte
 * header, then the rest of the buffer).
 */
static void rx_post(MqTest *t, unsigned qi, uint16_t b)
{
    MqQueue *q = &t->q[qi];
    uint64_t buf = q->bufs + (uint64_t)b * t->buf_size;
    uint64_t ring = q->rx->desc;
    uint16_t w = VRING_DESC_F_WRITE;
    uint16_t head;

    q->posted[q->npost++ % ARRAY_SIZE(q->posted)] = b;
    if (t->opts.indirect) {
        uint64_t tab = q->itab + 32 * (uint64_t)b;

        desc_write(t, tab, buf, t->hdr_len, w | (t->opts.packed ? 0 :
                                              VRING_DESC_F_NEXT), 1);
        desc_write(t, tab + 16, buf + t->hdr_len, t->buf_size - t->hdr_len,
                   w, 0);
    }
    if (!t->opts.packed) {
        head = t->opts.chain ? 2 * b : b;
        if (t->opts.indirect) {
            desc_write(t, ring + 16 * head, q->itab + 32 * (uint64_t)b, 32,
                       VRING_DESC_F_INDIRECT, 0);
        } else if (t->opts.chain) {
            desc_write(t, ring + 16 * head, buf, t->hdr_len,
                       w | VRING_DESC_F_NEXT, head + 1);
            desc_write(t, ring + 16 * (head + 1), buf + t->hdr_len,
                       t->buf_size - t->hdr_len, w, 0);
        } else {
            desc_write(t, ring + 16 * head, buf, t->buf_size, w, 0);
        }
        qtest_writew(t->qts, q->rx->avail + 4 +
                     2 * (q->avail_idx % q->rx->size), head);
        q->avail_idx++;
        qtest_writew(t->qts, q->rx->avail + 2, q->avail_idx);
        return;
    }
    /* packed: the head's flags are written last */
    head = q->avail_idx;
    if (t->opts.indirect) {
        desc_write(t, ring + 16 * head, q->itab + 32 * (uint64_t)b, 32,
                   VRING_DESC_F_INDIRECT | packed_avail_flags(q->avail_wrap),
                   b);
    } else if (t->opts.chain) {
        uint16_t second = (head + 1) % q->rx->size;
        bool wrap2 = second ? q->avail_wrap : !q->avail_wrap;

        desc_write(t, ring + 16 * second, buf + t->hdr_len,
                   t->buf_size - t->hdr_len, w | packed_avail_flags(wrap2), b);
        desc_write(t, ring + 16 * head, buf, t->hdr_len,
                   w | VRING_DESC_F_NEXT | packed_avail_flags(q->avail_wrap),
                   b);
    } else {
        desc_write(t, ring + 16 * head, buf, t->buf_size,
                   w | packed_avail_flags(q->avail_wrap), b);
    }
    q->avail_idx += t->opts.chain ? 2 : 1;
    if (q->avail_idx >= q->rx->size) {
        q->avail_idx -= q->rx->size;
        q->avail_wrap = !q->avail_wrap;
    }
}

/* Set queue @qi's receive buffers up; post and kick the first @n. */
static void rx_setup(MqTest *t, unsigned qi, unsigned n)
{
    MqQueue *q = &t->q[qi];
    uint32_t i;

    q->nbuf = t->opts.chain ? q->rx->size / 2 : q->rx->size;
    q->bufs = guest_alloc(&t->alloc, (uint64_t)q->nbuf * t->buf_size);
    q->itab = guest_alloc(&t->alloc, 32 * q->nbuf);
    qtest_memset(t->qts, q->rx->desc, 0, 16 * q->rx->size);
    q->avail_idx = 0;
    q->used_idx = 0;
    q->avail_wrap = q->used_wrap = true;
    q->npost = q->nused = 0;
    q->repost = true;
    g_assert_cmpuint(n, <=, q->nbuf);
    for (i = 0; i < n; i++) {
        rx_post(t, qi, i);
    }
    rx_kick(t, qi);
}

/* Packed ring: is the descriptor at @slot used (wrap counter @wrap)? */
static bool packed_used(MqTest *t, QVirtQueue *vq, uint16_t slot, bool wrap)
{
    uint16_t flags = qtest_readw(t->qts, vq->desc + 16 * slot + 14);

    return !!(flags & PACKED_F_AVAIL) == wrap &&
           !!(flags & PACKED_F_USED) == wrap;
}

/* Send a control command; returns the ack byte. */
static uint8_t ctrl_cmd(MqTest *t, uint8_t class, uint8_t cmd,
                        const void *data, size_t len)
{
    g_autofree uint8_t *b = g_malloc(2 + len);
    uint16_t before = used_idx(t, t->ctrl);
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    uint32_t head;

    g_assert_cmpuint(2 + len, <=, 1024);
    b[0] = class;
    b[1] = cmd;
    memcpy(b + 2, data, len);
    qtest_memwrite(t->qts, t->ctrl_buf, b, 2 + len);
    qtest_writeb(t->qts, t->ctrl_buf + 1024, 0xff);
    if (t->opts.packed) {
        uint16_t slot = t->ctrl_slot, second = (slot + 1) % t->ctrl->size;
        bool wrap = t->ctrl_wrap, wrap2 = second ? wrap : !wrap;

        desc_write(t, t->ctrl->desc + 16 * second, t->ctrl_buf + 1024, 1,
                   VRING_DESC_F_WRITE | packed_avail_flags(wrap2), 0);
        desc_write(t, t->ctrl->desc + 16 * slot, t->ctrl_buf, 2 + len,
                   VRING_DESC_F_NEXT | packed_avail_flags(wrap), 0);
        t->vdev->bus->virtqueue_kick(t->vdev, t->ctrl);
        while (!packed_used(t, t->ctrl, slot, wrap)) {
            if (g_get_monotonic_time() > deadline) {
                mq_fail("no answer to control command %u/%u", class, cmd);
            }
        }
        t->ctrl_slot = (slot + 2) % t->ctrl->size;
        t->ctrl_wrap = t->ctrl_slot < slot ? !wrap : wrap;
        return qtest_readb(t->qts, t->ctrl_buf + 1024);
    }
    head = qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf, 2 + len, false,
                          true);
    qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf + 1024, 1, true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->ctrl, head);
    while (used_idx(t, t->ctrl) == before) {
        if (g_get_monotonic_time() > deadline) {
            mq_fail("no answer to control command %u/%u", class, cmd);
        }
    }
    t->ctrl->last_used_idx++;
    return qtest_readb(t->qts, t->ctrl_buf + 1024);
}

static uint8_t ctrl_offloads(MqTest *t, uint64_t offloads)
{
    uint8_t le[8];

    stq_le_p(le, offloads);
    return ctrl_cmd(t, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                    VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, le, sizeof(le));
}

/*
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG with the test's key and indirection table
 * over @t->opts.pairs queues.
 */
static uint8_t ctrl_rss(MqTest *t)
{
    uint8_t b[8 + 2 * RSS_TABLE_LEN + 3 + RSS_KEY_LEN];
    uint8_t *p = b;
    unsigned i;

    stl_le_p(p, RSS_HASH_TYPES);
    stw_le_p(p + 4, RSS_TABLE_LEN - 1);
    stw_le_p(p + 6, 0);
    p += 8;
    for (i = 0; i < RSS_TABLE_LEN; i++, p += 2) {
        stw_le_p(p, t->table[i]);
    }
    stw_le_p(p, t->opts.pairs);
    p[2] = RSS_KEY_LEN;
    memcpy(p + 3, rss_key, RSS_KEY_LEN);
    return ctrl_cmd(t, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, b,
                    sizeof(b));
}

/*
 * Negotiate like netkvm, set every queue up, post receive buffers on the
 * queues whose bit is set in @post_mask, configure RSS and turn RSC on.
 */
static void mq_driver_init(MqTest *t, unsigned post_mask)
{
    uint64_t host, want = MQ_FEATURES;
    unsigned i;

    if (t->opts.mergeable) {
        want |= BIT(VIRTIO_NET_F_MRG_RXBUF);
    }
    if (t->opts.in_order) {
        want |= BIT(VIRTIO_F_IN_ORDER);
    }
    if (t->opts.hash) {
        want |= BIT(VIRTIO_NET_F_HASH_REPORT);
    }
    t->hdr_len = t->opts.hash ? HASH_HDR_LEN : V1_HDR_LEN;
    if (t->opts.packed) {
        want |= BIT(VIRTIO_F_RING_PACKED);
    }
    if (t->opts.indirect) {
        want |= BIT(VIRTIO_RING_F_INDIRECT_DESC);
    }
    if (!t->opts.no_event_idx) {
        want |= BIT(VIRTIO_RING_F_EVENT_IDX);
    }
    qvirtio_start_device(t->vdev);
    host = qvirtio_get_features(t->vdev);
    if ((host & want) != want) {
        mq_fail("device offers features 0x%016" PRIx64 ", the test needs "
                "0x%016" PRIx64 " (missing 0x%016" PRIx64 ")", host, want,
                want & ~host);
    }
    qvirtio_set_features(t->vdev, want);
    g_assert_cmpuint(qvirtio_config_readw(t->vdev, 8), ==, t->opts.pairs);
    for (i = 0; i < t->opts.pairs; i++) {
        t->q[i].rx = qvirtqueue_setup(t->vdev, &t->alloc, 2 * i);
        t->q[i].tx = qvirtqueue_setup(t->vdev, &t->alloc, 2 * i + 1);
    }
    t->ctrl = qvirtqueue_setup(t->vdev, &t->alloc, 2 * t->opts.pairs);
    if (t->opts.packed) {
        /*
         * The split layout libqos wrote serves as a packed one: the
         * descriptor ring where the split one is, the driver event
         * suppression area where the available ring starts (flags 0:
         * notify), the device's where the used ring starts.
         */
        for (i = 0; i < t->opts.pairs; i++) {
            qtest_memset(t->qts, t->q[i].tx->desc, 0, 16 * t->q[i].tx->size);
        }
        qtest_memset(t->qts, t->ctrl->desc, 0, 16 * t->ctrl->size);
        t->ctrl_slot = 0;
        t->ctrl_wrap = true;
    }
    qvirtio_set_driver_ok(t->vdev);
    for (i = 0; i < t->opts.pairs; i++) {
        rx_setup(t, i, post_mask & (1u << i) ?
                 (t->opts.chain ? t->q[i].rx->size / 2 : t->q[i].rx->size) :
                 0);
    }
    g_assert_cmpuint(ctrl_rss(t), ==, VIRTIO_NET_OK);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
}

static void mq_machine_args(GString *args, const MqOpts *o)
{
    g_string_append_printf(args, "-M pc -m 1024 -nodefaults "
                           "-device virtio-net-pci,netdev=n0,id=net0,"
                           "addr=%d.0,disable-legacy=on,romfile=,mq=on,"
                           "rss=on,hash=on,guest_rsc_ext=on,vectors=%u,"
                           "rx_queue_size=%d,mrg_rxbuf=%s,rsc_interval=%u",
                           MQ_PCI_SLOT, 2 * o->pairs + 2, MQ_RING_SIZE,
                           o->mergeable ? "on" : "off", o->interval);
    if (o->in_order) {
        g_string_append(args, ",in_order=on");
    }
    if (o->packed) {
        g_string_append(args, ",packed=on");
    }
}

/*
 * Start QEMU with the backend of @o; the driver posts buffers on the
 * queues of @post_mask.  Fails (not skips: the cases that need a tap are
 * registered as skips when it cannot be made) if the tap cannot be made.
 */
static MqTest *mq_start_posted(const MqOpts *o, unsigned post_mask)
{
    MqTest *t = g_new0(MqTest, 1);
    g_autoptr(GString) args = g_string_new(NULL);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(MQ_PCI_SLOT, 0) };
    unsigned i;
    int sv[2];

    g_assert_cmpuint(o->pairs, >=, 1);
    g_assert_cmpuint(o->pairs, <=, MQ_MAX_PAIRS);
    t->opts = *o;
    t->buf_size = o->buf_size ? o->buf_size :
                  o->mergeable ? MQ_MRG_BUF_SIZE : MQ_BUF_SIZE;
    t->conns = g_ptr_array_new_with_free_func(conn_free);
    t->frames = g_ptr_array_new_with_free_func(frame_free);
    t->sock = t->pkt = -1;
    for (i = 0; i < MQ_MAX_PAIRS; i++) {
        t->tapfd[i] = -1;
    }
    /* spread the table over every queue */
    for (i = 0; i < RSS_TABLE_LEN; i++) {
        t->table[i] = (i * 7 + i / 16) % o->pairs;
    }

    if (o->tap) {
        g_autofree char *err = NULL;

        if (!mq_tap_open(t, o->pairs, &err)) {
            mq_fail("multi-queue tap: %s", err);
        }
        g_string_append(args, "-netdev tap,id=n0,vhost=off,fds=");
        for (i = 0; i < o->pairs; i++) {
            g_string_append_printf(args, "%s%d", i ? ":" : "", t->tapfd[i]);
        }
        g_string_append_c(args, ' ');
    } else {
        g_assert_cmpuint(o->pairs, ==, 1);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        t->sock = sv[0];
        g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    }
    mq_machine_args(args, o);
    t->qts = qtest_init(args->str);
    if (o->tap) {
        for (i = 0; i < o->pairs; i++) {
            close(t->tapfd[i]);
            t->tapfd[i] = -1;
        }
    } else {
        close(sv[1]);
    }

    pc_alloc_init(&t->alloc, t->qts, 0);
    t->bus = qpci_new_pc(t->qts, &t->alloc);
    t->vpci = virtio_pci_new(t->bus, &addr);
    g_assert_nonnull(t->vpci);
    t->vdev = &t->vpci->vdev;
    g_assert_cmpuint(t->vdev->device_type, ==, VIRTIO_ID_NET);
    qvirtio_pci_device_enable(t->vpci);
    t->ctrl_buf = guest_alloc(&t->alloc, 2048);
    mq_driver_init(t, post_mask);
    return t;
}

static MqTest *mq_start(const MqOpts *o)
{
    return mq_start_posted(o, ~0u);
}

static void mq_end(MqTest *t)
{
    qtest_quit(t->qts);
    qvirtio_pci_device_disable(t->vpci);
    g_free(t->vpci->pdev);
    g_free(t->vpci);
    qpci_free_pc(t->bus);
    alloc_destroy(&t->alloc);
    if (t->sock >= 0) {
        close(t->sock);
    }
    if (t->pkt >= 0) {
        close(t->pkt);
    }
    g_ptr_array_unref(t->frames);
    g_ptr_array_unref(t->conns);
    g_free(t);
}

/* --- sending ------------------------------------------------------------- */

/* Give @n frames to the backend (one write on the socket: one burst). */
static void send_frames(MqTest *t, Frame **f, unsigned n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    size_t done = 0;
    unsigned i;

    t->nsent += n;
    if (t->pkt >= 0) {
        for (i = 0; i < n; i++) {
            if (send(t->pkt, f[i]->data, f[i]->len, 0) != f[i]->len) {
                mq_fail("injecting a %zu-byte frame into the tap: %s",
                        f[i]->len, strerror(errno));
            }
        }
        return;
    }
    for (i = 0; i < n; i++) {
        uint8_t len[4];

        stl_be_p(len, f[i]->len);
        g_byte_array_append(b, len, 4);
        g_byte_array_append(b, f[i]->data, f[i]->len);
    }
    while (done < b->len) {
        ssize_t r = send(t->sock, b->data + done, b->len - done,
                         MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            mq_fail("writing %u frames to the socket backend: %s", n,
                    strerror(errno));
        }
        done += r;
    }
}

/*
 * Wait until QEMU has read every frame given to the backend, plus one
 * qtest round trip: the frames reached the device (or wait in QEMU's
 * queue of the backend when the device did not accept them).
 */
static void backend_sync(MqTest *t)
{
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    int outq;

    for (;;) {
        if (t->pkt >= 0) {
            if (tap_frames_read(t) >= t->nsent) {
                break;
            }
        } else {
            g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
            if (outq == 0) {
                break;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            mq_fail("QEMU did not read the %u frames given to the backend",
                    t->nsent);
        }
        used_idx(t, t->ctrl);
    }
    used_idx(t, t->ctrl);
}

static void clock_step(MqTest *t, int64_t ns)
{
    backend_sync(t);
    qtest_clock_step(t->qts, ns);
}

/* --- counters ------------------------------------------------------------ */

static uint64_t rsc_stat(MqTest *t, const char *name)
{
    g_autoptr(QDict) rsp = NULL;
    QDict *ret;
    QNum *n;
    uint64_t v;

    backend_sync(t);
    rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/net0',"
                    " 'property': 'rsc-stats' } }");
    ret = qdict_get_qdict(rsp, "return");
    if (!ret) {
        mq_fail("qom-get net0 rsc-stats failed");
    }
    n = qobject_to(QNum, qdict_get(ret, name));
    if (!n || !qnum_get_try_uint(n, &v)) {
        mq_fail("rsc-stats has no uint64 counter '%s'", name);
    }
    return v;
}

/* --- receiving and checking ---------------------------------------------- */

static bool rx_ready(MqTest *t, unsigned qi)
{
    MqQueue *q = &t->q[qi];

    if (t->opts.packed) {
        return packed_used(t, q->rx, q->used_idx, q->used_wrap);
    }
    return used_idx(t, q->rx) != q->used_idx;
}

/* Pop one used element of queue @qi, which must be there. */
static void rx_pop_elem(MqTest *t, unsigned qi, uint32_t *id, uint32_t *len)
{
    MqQueue *q = &t->q[qi];
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    uint64_t a;

    while (!rx_ready(t, qi)) {
        if (g_get_monotonic_time() > deadline) {
            mq_fail("queue %u: timed out waiting for the rest of a "
                    "packet", qi);
        }
    }
    if (t->opts.packed) {
        a = q->rx->desc + 16 * q->used_idx;
        *id = qtest_readw(t->qts, a + 12);
        *len = qtest_readl(t->qts, a + 8);
        q->used_idx += t->opts.chain ? 2 : 1;
        if (q->used_idx >= q->rx->size) {
            q->used_idx -= q->rx->size;
            q->used_wrap = !q->used_wrap;
        }
    } else {
        a = q->rx->used + 4 + 8 * (q->used_idx % q->rx->size);
        *id = qtest_readl(t->qts, a);
        *len = qtest_readl(t->qts, a + 4);
        q->used_idx++;
        if (t->opts.chain && !t->opts.indirect) {
            if (*id & 1) {
                mq_fail("queue %u: used id %u is not the head of a chain",
                        qi, *id);
            }
            *id /= 2;
        }
    }
    if (*id >= q->nbuf || *len > t->buf_size) {
        mq_fail("queue %u: used element id %u length %u (ring %u, buffers "
                "of %u bytes)", qi, *id, *len, q->rx->size, t->buf_size);
    }
    if (t->opts.in_order &&
        *id != q->posted[q->nused % ARRAY_SIZE(q->posted)]) {
        mq_fail("queue %u: VIRTIO_F_IN_ORDER: used buffer %u, the next one "
                "made available is %u", qi, *id,
                q->posted[q->nused % ARRAY_SIZE(q->posted)]);
    }
    q->nused++;
}

/* The connection of a received frame, or NULL. */
static Conn *rx_conn(MqTest *t, const uint8_t *p, size_t len)
{
    bool v6;
    size_t l4;
    unsigned i;

    if (len < ETH_HLEN + IP6_HLEN + 4) {
        return NULL;
    }
    v6 = lduw_be_p(p + 12) == ETH_P_IPV6;
    l4 = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->v6 == v6 && c->sport == lduw_be_p(p + l4) &&
            c->dport == lduw_be_p(p + l4 + 2)) {
            return c;
        }
    }
    return NULL;
}

/*
 * Pop the next packet of queue @qi and check it against the stream of its
 * connection: steered to this queue, next in sequence, every byte, the
 * vnet header and the hash report as the device must make them.
 */
static Conn *rx_check_one(MqTest *t, unsigned qi)
{
    MqQueue *q = &t->q[qi];
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autoptr(GByteArray) exp = NULL;
    uint32_t id, len, hash;
    uint16_t report;
    uint8_t vhdr[10];
    unsigned i, nbufs = 1, n = 1;
    g_autofree uint32_t *ids = NULL;
    Conn *c;

    rx_pop_elem(t, qi, &id, &len);
    if (len < t->hdr_len) {
        mq_fail("queue %u: used length %u is shorter than the header", qi,
                len);
    }
    g_byte_array_set_size(b, len);
    qtest_bufread(t->qts, q->bufs + (uint64_t)id * t->buf_size, b->data,
                  len);
    if (t->opts.mergeable) {
        nbufs = lduw_le_p(b->data + 10);
        if (nbufs < 1 || nbufs > q->nbuf) {
            mq_fail("queue %u: num_buffers is %u", qi, nbufs);
        }
    }
    ids = g_new(uint32_t, nbufs);
    ids[0] = id;
    for (i = 1; i < nbufs; i++) {
        size_t old = b->len;

        rx_pop_elem(t, qi, &ids[i], &len);
        g_byte_array_set_size(b, old + len);
        qtest_bufread(t->qts, q->bufs + (uint64_t)ids[i] * t->buf_size,
                      b->data + old, len);
    }
    if (q->repost) {
        for (i = 0; i < nbufs; i++) {
            rx_post(t, qi, ids[i]);
        }
        rx_kick(t, qi);
    }

    c = rx_conn(t, b->data + t->hdr_len, b->len - t->hdr_len);
    if (!c) {
        mq_fail("queue %u: a %u-byte packet of no test connection", qi,
                b->len - t->hdr_len);
    }
    if (c->queue != qi) {
        mq_fail("conn %u (IPv%d, hash 0x%08x) arrived on queue %u, RSS "
                "steers it to queue %u", c->idx, c->v6 ? 6 : 4, c->hash, qi,
                c->queue);
    }
    if (b->data[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        n = lduw_le_p(b->data + 6);
    }
    if (n == 0 || c->next + n > c->segs->len) {
        mq_fail("conn %u: packet claims %u segments from segment %u, %u "
                "were sent", c->idx, n, c->next, c->segs->len);
    }
    exp = expected_packet(c, c->next, n, vhdr);
    if (memcmp(b->data, vhdr, 10)) {
        mq_fail("conn %u: vnet header %02x %02x len %u gso %u count %u "
                "dup %u, expected %02x %02x len %u gso %u count %u", c->idx,
                b->data[0], b->data[1], lduw_le_p(b->data + 2),
                lduw_le_p(b->data + 4), lduw_le_p(b->data + 6),
                lduw_le_p(b->data + 8), vhdr[0], vhdr[1],
                lduw_le_p(vhdr + 2), lduw_le_p(vhdr + 4),
                lduw_le_p(vhdr + 6));
    }
    hash = t->opts.hash ? ldl_le_p(b->data + 12) : c->hash;
    report = t->opts.hash ? lduw_le_p(b->data + 16) :
             c->v6 ? VIRTIO_NET_HASH_REPORT_TCPv6 :
                     VIRTIO_NET_HASH_REPORT_TCPv4;
    if (hash != c->hash ||
        report != (c->v6 ? VIRTIO_NET_HASH_REPORT_TCPv6
                         : VIRTIO_NET_HASH_REPORT_TCPv4)) {
        mq_fail("conn %u (%u segments from %u): hash 0x%08x type %u, "
                "expected the Toeplitz hash 0x%08x type %u", c->idx, n,
                c->next, hash, report, c->hash,
                c->v6 ? VIRTIO_NET_HASH_REPORT_TCPv6
                      : VIRTIO_NET_HASH_REPORT_TCPv4);
    }
    if (b->len - t->hdr_len != exp->len ||
        memcmp(b->data + t->hdr_len, exp->data, exp->len)) {
        for (i = 0; i < MIN(exp->len, b->len - t->hdr_len); i++) {
            if (b->data[t->hdr_len + i] != exp->data[i]) {
                break;
            }
        }
        mq_fail("conn %u: %u-byte packet of %u segments from %u differs "
                "from the expected %u bytes at byte %u", c->idx,
                b->len - t->hdr_len, n, c->next, exp->len, i);
    }
    if (t->opts.mergeable &&
        nbufs != DIV_ROUND_UP(t->hdr_len + exp->len, t->buf_size)) {
        mq_fail("conn %u: num_buffers %u for a %u-byte packet", c->idx,
                nbufs, exp->len);
    }
    if (n > 1) {
        c->unit_hash = hash;
        c->unit_report = report;
    } else {
        c->single_hash = hash;
        c->single_report = report;
    }
    c->next += n;
    c->packets++;
    c->coalesced += n > 1;
    return c;
}

/* Check every packet that is in the used ring of queue @qi now. */
static unsigned rx_check_ready(MqTest *t, unsigned qi)
{
    unsigned n = 0;

    while (rx_ready(t, qi)) {
        rx_check_one(t, qi);
        n++;
    }
    return n;
}

static bool all_received(MqTest *t)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->next != c->segs->len) {
            return false;
        }
    }
    return true;
}

/* Name the first connection with segments not received yet. */
static G_NORETURN void fail_missing(MqTest *t, const char *why)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->next != c->segs->len) {
            mq_fail("%s: conn %u (queue %u) got %u of %u segments", why,
                    c->idx, c->queue, c->next, c->segs->len);
        }
    }
    mq_fail("%s", why);
}

/*
 * Receive on every queue until every segment sent has arrived, without
 * any clock step: they must all be in the rings or on their way.
 */
static void rx_all_now(MqTest *t, const char *why)
{
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    unsigned qi;

    backend_sync(t);
    while (!all_received(t)) {
        for (qi = 0; qi < t->opts.pairs; qi++) {
            rx_check_ready(t, qi);
        }
        if (g_get_monotonic_time() > deadline) {
            fail_missing(t, why);
        }
    }
}

/* Nothing may be in any used ring (after the backend was read). */
static void assert_idle(MqTest *t, unsigned mask, const char *why)
{
    unsigned qi;

    backend_sync(t);
    for (qi = 0; qi < t->opts.pairs; qi++) {
        if ((mask & (1u << qi)) && rx_ready(t, qi)) {
            Conn *c = rx_check_one(t, qi);

            mq_fail("expected no delivery on queue %u (%s), but conn %u "
                    "got a packet", qi, why, c->idx);
        }
    }
}

/* Per connection: exactly @packets packets so far, all coalesced. */
static void assert_units(MqTest *t, unsigned packets)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->packets != packets || c->coalesced != packets) {
            mq_fail("conn %u (queue %u): %u packets, %u coalesced; "
                    "expected %u coalesced units", c->idx, c->queue,
                    c->packets, c->coalesced, packets);
        }
    }
}

/* --- test cases ---------------------------------------------------------- */

typedef struct MqCase {
    unsigned pairs;
    bool tap;
    bool mergeable;
    bool packed;
    bool indirect;
    bool chain;
    bool no_event_idx;
    bool layout;            /* a ring layout variant: fewer cases */
} MqCase;

static MqOpts case_opts(const void *data, uint32_t interval)
{
    const MqCase *mc = data;
    MqOpts o = {
        .pairs = mc->pairs,
        .tap = mc->tap,
        .mergeable = mc->mergeable,
        .packed = mc->packed,
        .indirect = mc->indirect,
        .chain = mc->chain,
        .no_event_idx = mc->no_event_idx,
        .hash = mc->tap,
        .interval = interval,
    };

    return o;
}

/* @nconn connections, alternately IPv4 and IPv6, spread over the queues. */
static void conns_spread(MqTest *t, Conn **c, unsigned nconn)
{
    unsigned i;

    for (i = 0; i < nconn; i++) {
        c[i] = conn_new(t, i & 1, (i / 2) % t->opts.pairs);
    }
}

/* @nseg segments of each connection, interleaved, in one burst. */
static void send_interleaved(MqTest *t, Conn **c, unsigned nconn,
                             unsigned nseg)
{
    g_autofree Frame **f = g_new(Frame *, nconn * nseg);
    unsigned i, j;

    for (j = 0; j < nseg; j++) {
        for (i = 0; i < nconn; i++) {
            f[j * nconn + i] = seg(t, c[i], MSS);
        }
    }
    send_frames(t, f, nconn * nseg);
}

/*
 * 24 interleaved connections, IPv4 and IPv6, spread by RSS over every
 * queue: each connection's segments are held as one unit on the queue
 * RSS chose, until rsc_interval, and arrive there coalesced, in order,
 * with the hash report of the connection.
 */
static void test_rss_spread(const void *data)
{
    enum { NCONN = 24, NSEG = 5 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];

    conns_spread(t, c, NCONN);
    send_interleaved(t, c, NCONN, NSEG);
    clock_step(t, MQ_INTERVAL - 1);
    assert_idle(t, ~0u, "units are held until rsc_interval");
    clock_step(t, 1);
    rx_all_now(t, "every unit is due after rsc_interval");
    assert_units(t, 1);
    assert_idle(t, ~0u, "everything was received");
    g_assert_cmpuint(rsc_stat(t, "units-delivered"), ==, NCONN);
    g_assert_cmpuint(rsc_stat(t, "segments-merged"), ==,
                     NCONN * (NSEG - 1));

    /* a second round on the same connections */
    send_interleaved(t, c, NCONN, NSEG);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "the second units are due");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * rsc_interval=0: every unit is delivered at the end of the receive
 * burst, on every queue, with no clock step; coalescing still happens.
 */
static void test_rss_burst_end(const void *data)
{
    enum { NCONN = 16, NSEG = 4 };
    MqOpts o = case_opts(data, 0);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];

    conns_spread(t, c, NCONN);
    send_interleaved(t, c, NCONN, NSEG);
    rx_all_now(t, "units are delivered at the end of the burst");
    g_assert_cmpuint(rsc_stat(t, "segments-merged"), >, 0);
    mq_end(t);
}

/*
 * Every queue has its own timer: a unit held on queue 1 is neither
 * delayed nor flushed by traffic on queue 0, and queue 0's unit is due
 * at its own deadline whatever queue 1 holds.
 */
static void test_rss_queue_timers(const void *data)
{
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *a4 = conn_new(t, false, 0);
    Conn *a6 = conn_new(t, true, 0);
    Conn *b4 = conn_new(t, false, 1);
    Conn *b6 = conn_new(t, true, 1);
    Frame *f[4];
    unsigned i;

    /* t0: units of queue 0 start */
    f[0] = seg(t, a4, MSS);
    f[1] = seg(t, a6, MSS);
    f[2] = seg(t, a4, MSS);
    f[3] = seg(t, a6, MSS);
    send_frames(t, f, 4);
    clock_step(t, MQ_INTERVAL / 2);

    /* t0 + interval/2: units of queue 1 start */
    f[0] = seg(t, b4, MSS);
    f[1] = seg(t, b6, MSS);
    f[2] = seg(t, b4, MSS);
    f[3] = seg(t, b6, MSS);
    send_frames(t, f, 4);
    clock_step(t, MQ_INTERVAL / 2 - 1);
    assert_idle(t, ~0u, "no unit is due yet");

    /* t0 + interval: queue 0's units, not queue 1's */
    clock_step(t, 1);
    for (i = 0; i < 2; i++) {
        /* the timer has fired: the packets are in the ring */
        if (!rx_ready(t, 0)) {
            mq_fail("queue 0's units are not delivered at their deadline");
        }
        rx_check_one(t, 0);
    }
    assert_idle(t, 0x2, "queue 1's units are due only later");
    g_assert_cmpuint(a4->coalesced + a6->coalesced, ==, 2);

    /* queue 0 traffic that ends a unit at once leaves queue 1 alone */
    f[0] = seg(t, a4, MSS);
    f[1] = seg(t, a4, 100);
    f[2] = seg(t, a6, MSS);
    f[3] = seg_flags(t, a6, 100, TCP_ACK | TCP_PSH);
    send_frames(t, f, 4);
    backend_sync(t);
    while (a4->next < a4->segs->len || a6->next < a6->segs->len) {
        if (!rx_ready(t, 0)) {
            mq_fail("queue 0's short segments did not end their units");
        }
        rx_check_one(t, 0);
    }
    assert_idle(t, 0x2, "traffic on queue 0 does not flush queue 1");

    /* queue 1's units at exactly their own deadline */
    clock_step(t, MQ_INTERVAL / 2 - 1);
    assert_idle(t, ~0u, "queue 1's units are not due yet");
    clock_step(t, 1);
    rx_all_now(t, "queue 1's units are due");
    g_assert_cmpuint(b4->packets, ==, 1);
    g_assert_cmpuint(b6->packets, ==, 1);
    g_assert_cmpuint(b4->coalesced + b6->coalesced, ==, 2);
    mq_end(t);
}

/*
 * Hash reports: with RSC off (netkvm clears TSO4/TSO6) every segment goes
 * alone and the device reports its hash; with RSC on, the unit built of
 * the next segments of each connection carries the same hash value and
 * report type, and both are the Toeplitz hash the test computed.
 */
static void test_hash_report(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];
    unsigned i;

    conns_spread(t, c, NCONN);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFF_OFFLOADS), ==, VIRTIO_NET_OK);
    send_interleaved(t, c, NCONN, 2);
    rx_all_now(t, "with RSC off every segment goes alone at once");
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    send_interleaved(t, c, NCONN, 4);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "the units are due");
    for (i = 0; i < NCONN; i++) {
        g_assert_cmpuint(c[i]->packets, ==, 3);
        g_assert_cmpuint(c[i]->coalesced, ==, 1);
        g_assert_cmphex(c[i]->unit_hash, ==, c[i]->single_hash);
        g_assert_cmpuint(c[i]->unit_report, ==, c[i]->single_report);
        g_assert_cmphex(c[i]->unit_hash, ==, c[i]->hash);
    }
    mq_end(t);
}

/* Frames of the connections in @c[0..n-1] on queue @qi (or not). */
static unsigned frames_for(MqTest *t, Conn **c, unsigned n, unsigned nseg,
                           unsigned qi, bool on_queue, Frame **f)
{
    unsigned i, j, k = 0;

    for (j = 0; j < nseg; j++) {
        for (i = 0; i < n; i++) {
            if ((c[i]->queue == qi) == on_queue) {
                f[k++] = seg(t, c[i], MSS);
            }
        }
    }
    return k;
}

/* Wait until QEMU has read at least @n frames more than @before. */
static void backend_read_some(MqTest *t, uint64_t before, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    int outq = 0;

    for (;;) {
        if (t->pkt >= 0) {
            if (tap_frames_read(t) >= before + n) {
                break;
            }
        } else {
            g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
            if (outq < before) {
                break;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            mq_fail("QEMU read none of the frames for the empty queue");
        }
        used_idx(t, t->ctrl);
    }
    used_idx(t, t->ctrl);
}

/* Receive until every connection not steered to @skip has everything. */
static void rx_all_but(MqTest *t, unsigned skip, const char *why)
{
    gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;
    unsigned i, qi;

    for (;;) {
        bool done = true;

        for (i = 0; i < t->conns->len; i++) {
            Conn *c = g_ptr_array_index(t->conns, i);

            done = done && (c->queue == skip || c->next == c->segs->len);
        }
        if (done) {
            return;
        }
        for (qi = 0; qi < t->opts.pairs; qi++) {
            if (qi != skip) {
                rx_check_ready(t, qi);
            }
        }
        if (g_get_monotonic_time() > deadline) {
            fail_missing(t, why);
        }
    }
}

/*
 * Liveness: the last queue has no receive buffers.  The connections of
 * the other queues are delivered; those of the empty queue wait, nothing
 * of them is lost.  When the driver posts buffers there and kicks that
 * queue once, everything held back arrives with no further kick, as a
 * Windows guest that waits for interrupts needs it.  The frames for the
 * empty queue are sent last: in the backend they hold back what follows
 * them on their backend queue, with or without RSC (see the docs).  The
 * same run with RSC off needs the same single kick.
 */
static void liveness(const void *data, bool rsc)
{
    enum { NCONN = 16, NSEG = 4 };
    MqOpts o = case_opts(data, 0);
    unsigned empty = o.pairs - 1;
    MqTest *t = mq_start_posted(&o, ~(1u << empty));
    Conn *c[NCONN];
    Frame *f[NCONN * NSEG];
    uint64_t before;
    unsigned n, qi;

    if (!rsc) {
        g_assert_cmpuint(ctrl_offloads(t, RSC_OFF_OFFLOADS), ==,
                         VIRTIO_NET_OK);
    }
    conns_spread(t, c, NCONN);
    n = frames_for(t, c, NCONN, NSEG, empty, false, f);
    send_frames(t, f, n);
    rx_all_but(t, empty, "the queues with buffers go on");

    n = frames_for(t, c, NCONN, NSEG, empty, true, f);
    if (t->pkt >= 0) {
        before = tap_frames_read(t);
    } else {
        for (before = 0, qi = 0; qi < n; qi++) {
            before += 4 + f[qi]->len;
        }
    }
    send_frames(t, f, n);
    backend_read_some(t, before, 1);
    /* (the backend holds the rest: no backend_sync() here) */
    if (rx_ready(t, empty)) {
        mq_fail("queue %u has no buffers, but a packet was delivered",
                empty);
    }

    /* buffers on the empty queue, one kick, no more kicks */
    for (qi = 0; qi < o.pairs; qi++) {
        t->q[qi].repost = false;
    }
    for (n = 0; n < t->q[empty].nbuf; n++) {
        rx_post(t, empty, n);
    }
    rx_kick(t, empty);
    rx_all_now(t, "one kick of the refilled queue delivers everything");
    if (rsc) {
        g_assert_cmpuint(rsc_stat(t, "segments-merged"), >, 0);
    }
    mq_end(t);
}

static void test_liveness_rsc_on(const void *data)
{
    liveness(data, true);
}

static void test_liveness_rsc_off(const void *data)
{
    liveness(data, false);
}

/* Hold a unit of @nseg segments on each connection, on every queue. */
static void hold_units(MqTest *t, Conn **c, unsigned nconn, unsigned nseg)
{
    send_interleaved(t, c, nconn, nseg);
    assert_idle(t, ~0u, "the units are held");
}

/*
 * VM stop with units held on every queue delivers them at once, whole;
 * frames offered while the VM is stopped wait in the backend and are
 * coalesced after cont.  Nothing lost, order kept.
 */
static void test_lifecycle_vm_stop(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];

    conns_spread(t, c, NCONN);
    hold_units(t, c, NCONN, 3);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'stop' }");
    rx_all_now(t, "stopping the VM flushes every queue");
    assert_units(t, 1);
    g_assert_cmpuint(rsc_stat(t, "flush-vm-stop"), ==, NCONN);

    send_interleaved(t, c, NCONN, 3);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'cont' }");
    assert_idle(t, ~0u, "frames offered while stopped start units at cont");
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "the units are due");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * A device reset with units held on every queue puts them in the rings
 * before the queues are reset; after the driver has set the device up
 * again, RSS and RSC work as before.
 */
static void test_lifecycle_reset(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];
    unsigned qi;

    conns_spread(t, c, NCONN);
    hold_units(t, c, NCONN, 3);
    qvirtio_reset(t->vdev);
    for (qi = 0; qi < o.pairs; qi++) {
        t->q[qi].repost = false;
    }
    rx_all_now(t, "a reset flushes every queue into its ring");
    assert_units(t, 1);
    g_assert_cmpuint(rsc_stat(t, "flush-reset"), ==, NCONN);
    mq_driver_init(t, ~0u);
    hold_units(t, c, NCONN, 3);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "the units after the reset are due");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * Turning RSC off (CTRL_GUEST_OFFLOADS_SET without TSO4/TSO6) with units
 * held on every queue delivers them at once; what follows goes alone,
 * in order; turning it on again coalesces again.
 */
static void test_lifecycle_offloads(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];
    unsigned i;

    conns_spread(t, c, NCONN);
    hold_units(t, c, NCONN, 3);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFF_OFFLOADS), ==, VIRTIO_NET_OK);
    rx_all_now(t, "turning RSC off flushes every queue");
    assert_units(t, 1);
    g_assert_cmpuint(rsc_stat(t, "flush-offloads"), ==, NCONN);
    send_interleaved(t, c, NCONN, 2);
    rx_all_now(t, "with RSC off segments go alone at once");
    for (i = 0; i < NCONN; i++) {
        g_assert_cmpuint(c[i]->packets, ==, 3);
    }
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, NCONN, 3);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "units again after RSC is back on");
    for (i = 0; i < NCONN; i++) {
        g_assert_cmpuint(c[i]->coalesced, ==, 2);
    }
    mq_end(t);
}

/*
 * Live migration with units held on every queue: the source delivers them
 * when the VM stops, before the last RAM pass, so the guest finds them in
 * its rings on the destination, whole and in order.  RSS, hash reports
 * and RSC go on at the destination, whose backend is a new socketpair or
 * new queues of the same tap.
 */
static void test_lifecycle_migration(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    g_autoptr(GString) args = g_string_new(NULL);
    g_autofree char *dir = g_dir_make_tmp("virtio-net-rsc-mq-XXXXXX", NULL);
    g_autofree char *path = g_strdup_printf("%s/migration", dir);
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    int fds[MQ_MAX_PAIRS], sv[2] = { -1, -1 };
    Conn *c[NCONN];
    QTestState *dst;
    unsigned i;

    conns_spread(t, c, NCONN);
    hold_units(t, c, NCONN, 3);

    if (o.tap) {
        mq_tap_attach(t, o.pairs, fds);
        g_string_append(args, "-netdev tap,id=n0,vhost=off,fds=");
        for (i = 0; i < o.pairs; i++) {
            g_string_append_printf(args, "%s%d", i ? ":" : "", fds[i]);
        }
        g_string_append_c(args, ' ');
    } else {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    }
    mq_machine_args(args, &o);
    g_string_append(args, " -incoming defer");
    dst = qtest_init(args->str);
    if (o.tap) {
        for (i = 0; i < o.pairs; i++) {
            close(fds[i]);
        }
    } else {
        close(sv[1]);
    }
    qtest_qmp_assert_success(dst, "{ 'execute': 'migrate-incoming',"
                             " 'arguments': { 'uri': %s } }", uri);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate-set-capabilities',"
                             " 'arguments': { 'capabilities': [ {"
                             " 'capability': 'events', 'state': true } ] } }");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate',"
                             " 'arguments': { 'uri': %s } }", uri);
    for (;;) {
        QDict *ev = qtest_qmp_eventwait_ref(t->qts, "MIGRATION");
        const char *status = qdict_get_str(qdict_get_qdict(ev, "data"),
                                           "status");
        bool done = !strcmp(status, "completed");

        if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
            mq_fail("migration %s", status);
        }
        qobject_unref(ev);
        if (done) {
            break;
        }
    }
    qtest_qmp_eventwait(dst, "RESUME");
    g_assert_cmpuint(rsc_stat(t, "flush-vm-stop"), ==, NCONN);

    /* from here on the test drives the destination */
    qtest_quit(t->qts);
    t->qts = dst;
    t->bus->qts = dst;
    if (!o.tap) {
        close(t->sock);
        t->sock = sv[0];
        t->nsent = 0;
    }
    unlink(path);
    rmdir(dir);

    rx_all_now(t, "the units flushed at the stop are in the rings");
    assert_units(t, 1);
    hold_units(t, c, NCONN, 3);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "the destination coalesces");
    assert_units(t, 2);
    g_assert_cmpuint(rsc_stat(t, "units-delivered"), ==, NCONN);
    mq_end(t);
}

/*
 * VIRTIO_F_IN_ORDER: buffers are used in the order they were made
 * available (checked for every used element).  Consecutive segments of
 * one connection still merge: each connection's run becomes one unit,
 * and the unit is flushed when a frame of another connection comes.
 */
static void test_in_order_runs(const void *data)
{
    enum { NCONN = 8, NSEG = 4 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t;
    Conn *c[NCONN];
    Frame *f[NCONN * NSEG];
    unsigned i, j;

    o.in_order = true;
    t = mq_start(&o);
    conns_spread(t, c, NCONN);
    for (i = 0; i < NCONN; i++) {
        for (j = 0; j < NSEG; j++) {
            f[i * NSEG + j] = seg(t, c[i], MSS);
        }
    }
    send_frames(t, f, NCONN * NSEG);
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "every run is delivered");
    if (!o.tap) {
        /* one backend queue: the runs reach the device as sent */
        assert_units(t, 1);
    }
    g_assert_cmpuint(rsc_stat(t, "segments-merged"), >, 0);
    mq_end(t);
}

/* Has every connection everything but the last segment of @last? */
static bool all_received_but_last(MqTest *t, Conn *last)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->next + (c == last) != c->segs->len) {
            return false;
        }
    }
    return true;
}

/*
 * VIRTIO_F_IN_ORDER with connections interleaved segment by segment: a
 * unit cannot stay open while another connection's frame takes the next
 * buffer, so every segment goes alone, in order, nothing lost.
 */
static void test_in_order_interleaved(const void *data)
{
    enum { NCONN = 16, NSEG = 4 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t;
    Conn *c[NCONN];

    o.in_order = true;
    t = mq_start(&o);
    conns_spread(t, c, NCONN);
    send_interleaved(t, c, NCONN, NSEG);
    if (!o.tap) {
        /*
         * One backend queue: each frame is flushed by the next one, at
         * once; only the last frame sent waits for the timer.
         */
        Conn *last = c[NCONN - 1];
        gint64 deadline = g_get_monotonic_time() + MQ_TIMEOUT_US;

        backend_sync(t);
        while (!all_received_but_last(t, last)) {
            rx_check_ready(t, 0);
            if (g_get_monotonic_time() > deadline) {
                fail_missing(t, "an open unit is flushed by the next frame "
                             "of another connection");
            }
        }
        assert_idle(t, ~0u, "the last frame's unit is held");
    }
    clock_step(t, MQ_INTERVAL);
    rx_all_now(t, "every segment is delivered");
    mq_end(t);
}

/*
 * A new RSS configuration moves connections to other queues: the units
 * held under the old one are delivered first, so that no data of a
 * connection on its new queue can overtake its unit on the old one.
 */
static void test_rss_reconfig(const void *data)
{
    enum { NCONN = 16 };
    MqOpts o = case_opts(data, MQ_INTERVAL);
    MqTest *t = mq_start(&o);
    Conn *c[NCONN];
    Frame *f[2 * NCONN];
    unsigned i;

    conns_spread(t, c, NCONN);
    hold_units(t, c, NCONN, 3);
    for (i = 0; i < RSS_TABLE_LEN; i++) {
        t->table[i] = (t->table[i] + 1) % o.pairs;
    }
    g_assert_cmpuint(ctrl_rss(t), ==, VIRTIO_NET_OK);
    rx_all_now(t, "a new RSS configuration delivers the units held under "
               "the old one");
    assert_units(t, 1);
    for (i = 0; i < NCONN; i++) {
        c[i]->queue = t->table[c[i]->hash % RSS_TABLE_LEN];
        f[2 * i] = seg(t, c[i], MSS);
        f[2 * i + 1] = seg(t, c[i], 100);
    }
    send_frames(t, f, 2 * NCONN);
    rx_all_now(t, "short segments end the units on the new queues at once");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * Receive buffers of 1 KiB without mergeable buffers: a frame that does
 * not fit is dropped, as virtio-net does without RSC, and the buffer it
 * was tried in is given back.  The frames that fit, before and after, all
 * arrive, coalesced where RSC is on; the ring stays consistent (with
 * chained descriptors on a packed ring, giving a buffer back must rewind
 * every descriptor of the chain).
 */
static void small_buffers(const void *data, bool rsc)
{
    MqOpts o = case_opts(data, 0);
    MqTest *t;
    Conn *big, *c;
    Frame *f[5];
    unsigned i, j;

    o.buf_size = 1024;
    t = mq_start(&o);
    if (!rsc) {
        g_assert_cmpuint(ctrl_offloads(t, RSC_OFF_OFFLOADS), ==,
                         VIRTIO_NET_OK);
    }
    big = conn_new(t, false, 0);
    c = conn_new(t, true, 0);
    for (j = 0; j < 4; j++) {
        f[0] = seg(t, big, MSS);
        for (i = 1; i < 5; i++) {
            f[i] = seg(t, c, 100);
        }
        send_frames(t, f, 5);
    }
    /* the frames of @big are dropped: none may arrive */
    g_ptr_array_set_size(big->segs, 0);
    rx_all_now(t, "the frames that fit arrive");
    assert_idle(t, ~0u, "the frames too large for the buffers are dropped");
    if (rsc) {
        g_assert_cmpuint(c->coalesced, >, 0);
    }
    mq_end(t);
}

static void test_small_buffers_rsc_on(const void *data)
{
    small_buffers(data, true);
}

static void test_small_buffers_rsc_off(const void *data)
{
    small_buffers(data, false);
}

/* A case registered as a skip, with the reason. */
static void test_skip(const void *data)
{
    g_test_skip(data);
}

static const MqCase cases[] = {
    { .pairs = 1 },
    { .pairs = 1, .mergeable = true },
    { .pairs = 2, .tap = true },
    { .pairs = 4, .tap = true },
    { .pairs = 4, .tap = true, .mergeable = true },
    { .pairs = 1, .packed = true, .layout = true },
    { .pairs = 1, .packed = true, .mergeable = true, .layout = true },
    { .pairs = 4, .tap = true, .packed = true, .layout = true },
    { .pairs = 1, .indirect = true, .no_event_idx = true, .layout = true },
    { .pairs = 1, .packed = true, .indirect = true, .mergeable = true,
      .no_event_idx = true, .layout = true },
    { .pairs = 1, .chain = true, .layout = true },
    { .pairs = 1, .packed = true, .chain = true, .layout = true },
};

static char *case_path(const char *name, const MqCase *mc)
{
    return g_strdup_printf("virtio-net-rsc-mq/%s/%uq%s%s%s%s%s/%s",
                           mc->tap ? "tap" : "socket", mc->pairs,
                           mc->packed ? "-packed" : "",
                           mc->mergeable ? "-mergeable" : "",
                           mc->indirect ? "-indirect" : "",
                           mc->chain ? "-chain" : "",
                           mc->no_event_idx ? "-no-event-idx" : "", name);
}

static void add_skip(const char *name, const MqCase *mc, const char *why)
{
    g_autofree char *path = case_path(name, mc);

    qtest_add_data_func(path, why, test_skip);
}

static void add_case(const char *name, const MqCase *mc, GTestDataFunc fn)
{
    g_autofree char *path = case_path(name, mc);

    if (mc->tap && tap_unavailable) {
        qtest_add_data_func(path, tap_unavailable, test_skip);
    } else {
        qtest_add_data_func(path, mc, fn);
    }
}

int main(int argc, char **argv)
{
    unsigned i;

    /* before anything can start a thread */
    netns_setup();
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("virtio-net-rsc-mq/toeplitz-reference",
                   test_toeplitz_reference);
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        const MqCase *mc = &cases[i];

        add_case("rss-spread", mc, test_rss_spread);
        add_case("burst-end", mc, test_rss_burst_end);
        add_case("liveness/rsc-on", mc, test_liveness_rsc_on);
        add_case("in-order/runs", mc, test_in_order_runs);
        if (!mc->mergeable && !mc->tap) {
            add_case("small-buffers/rsc-on", mc, test_small_buffers_rsc_on);
            add_case("small-buffers/rsc-off", mc,
                     test_small_buffers_rsc_off);
        }
        if (mc->layout) {
            continue;
        }
        if (mc->tap) {
            add_case("hash-report", mc, test_hash_report);
        } else {
            add_skip("hash-report", mc, "QEMU offers no VIRTIO_NET_F_HASH_"
                     "REPORT with a backend without vnet headers");
        }
        if (mc->pairs > 1) {
            add_case("queue-timers", mc, test_rss_queue_timers);
            add_case("rss-reconfig", mc, test_rss_reconfig);
        }
        add_case("liveness/rsc-off", mc, test_liveness_rsc_off);
        add_case("lifecycle/vm-stop", mc, test_lifecycle_vm_stop);
        add_case("lifecycle/reset", mc, test_lifecycle_reset);
        add_case("lifecycle/offloads", mc, test_lifecycle_offloads);
        add_case("lifecycle/migration", mc, test_lifecycle_migration);
        add_case("in-order/interleaved", mc, test_in_order_interleaved);
    }
    return g_test_run();
}
