/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net receive segment coalescing (RSC)
 *
 * The guest side negotiates like the Windows netkvm driver (GUEST_CSUM,
 * CTRL_VQ, CTRL_GUEST_OFFLOADS, GUEST_TSO4/6, RSC_EXT) and enables RSC
 * with CTRL_GUEST_OFFLOADS_SET.  TCP segments are injected through a
 * socketpair (-netdev socket), so no privileges are needed.  Every test
 * is named after the rule of docs/system/devices/virtio-net-rsc.rst it
 * checks.
 *
 * The same checks run through a tap backend with vnet headers (the setup
 * the Windows HLK uses), in a private network namespace; frames are
 * injected with an AF_PACKET socket (PACKET_VNET_HDR) bound to the tap, so
 * the host kernel produces the vnet header flags and GSO packets.
 *
 * Every payload byte is a function of (connection, sequence offset), so
 * any delivered packet can be mapped back to the segments it came from.
 * A test declares the packets it expects (a frame delivered untouched, or
 * a unit coalesced from a list of segments); the checker pops the used
 * ring, matches each packet against the next expectation of its
 * connection and compares every byte, naming the first field that
 * differs.
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
#include <linux/ethtool.h>
#include <arpa/inet.h>
#include <net/if_arp.h>
#include <sys/wait.h>
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

#define RSC_TIMEOUT_US          (30 * G_USEC_PER_SEC)
#define RSC_INTERVAL            1000000     /* ns, as in the HLK setup */
#define RSC_DEFAULT_INTERVAL    300000
#define RSC_PCI_SLOT            4

#define VNET_HDR_LEN            12          /* struct virtio_net_hdr_v1 */
#define MAX_FRAME               65549       /* netkvm's limit, 65535 + 14 */
#define BIG_BUF_SIZE            (64 * 1024 + 64)
#define MRG_BUF_SIZE            4096
#define RX_RING_SIZE            1024

#define IP4_HLEN                20
#define IP6_HLEN                40
#define TCP_HLEN                20
#define MSS                     1448


#define TCP_FIN                 0x01
#define TCP_SYN                 0x02
#define TCP_RST                 0x04
#define TCP_PSH                 0x08
#define TCP_ACK                 0x10
#define TCP_URG                 0x20
#define TCP_ECE                 0x40
#define TCP_CWR                 0x80

#define IP_DF                   0x4000
#define IP_MF                   0x2000

#define ECN_ECT0                0x02
#define ECN_CE                  0x03

#define BIT(n)                  (1ULL << (n))
#define RSC_OFFLOADS            (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                                 BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                                 BIT(VIRTIO_NET_F_GUEST_TSO6) | \
                                 BIT(VIRTIO_NET_F_RSC_EXT))
#define RSC_FEATURES            (BIT(VIRTIO_F_VERSION_1) | \
                                 BIT(VIRTIO_NET_F_CTRL_VQ) | \
                                 BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | \
                                 RSC_OFFLOADS)

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

/* How a test wants the device and the guest driver set up. */
typedef struct RscOpts {
    uint32_t interval;      /* rsc_interval in ns */
    bool default_interval;  /* leave rsc_interval unset */
    unsigned max_flows;     /* rsc_max_flows, 0: device default */
    bool mergeable;         /* negotiate MRG_RXBUF, 4 KiB buffers */
    uint32_t buf_size;      /* rx buffer size with vnet header, 0: default */
    unsigned nbufs;         /* rx buffers posted at start, 0: whole ring */
    bool no_rsc_ext;        /* negotiate without VIRTIO_NET_F_RSC_EXT */
    bool tap;               /* tap backend with vnet headers */
} RscOpts;

/* Backend and receive buffer layout of a test variant. */
typedef struct RscVariant {
    bool mergeable;
    bool tap;
} RscVariant;

static const RscVariant variant_big = { .mergeable = false };
static const RscVariant variant_mrg = { .mergeable = true };
static const RscVariant variant_tap = { .tap = true };
static const RscVariant variant_tap_mrg = { .mergeable = true, .tap = true };

/* Why tap tests cannot run here, or NULL. */
static char *tap_unavailable;

/*
 * A tap with NAPI (so GRO validates checksums) on a bridge that every
 * test's tap joins: frames written to it reach QEMU marked DATA_VALID.
 */
static int gro_fd = -1;
static char *gro_unavailable;

/* A frame the test built (and usually sent). */
typedef struct Frame {
    uint8_t *data;
    size_t len;
    int conn;           /* index of its Conn, -1 if not of a connection */
    unsigned id;        /* creation order, for messages */
    bool tcp;           /* built by tcp_frame() */
    uint32_t seq;       /* TCP sequence number */
    uint32_t off;       /* sequence offset from the connection's ISN */
    uint32_t plen;      /* TCP payload bytes */
    size_t l3;          /* offset of the IP header */
    size_t l4;          /* offset of the TCP header */
    size_t hdr_len;     /* Ethernet + IP + TCP header bytes */
    uint8_t tx_vhdr[10];    /* vnet header given to the tap backend */
    uint8_t rx_vhdr[10];    /* vnet header expected when delivered alone */
    bool any_hdr_len;       /* the kernel chooses hdr_len of rx_vhdr */
    bool via_gro;           /* sent through the NAPI tap and the bridge */
} Frame;

/*
 * A TCP connection, as seen from the sender.  tcp_frame() builds a
 * segment from the current field values; tests change them in between.
 */
typedef struct Conn {
    unsigned idx;
    bool v6;
    uint16_t src_host;      /* last 16 bits of the source address */
    uint16_t sport, dport;
    uint32_t isn;           /* sequence number of offset 0 */
    uint32_t next_off;      /* offset of the next segment of seg() */
    uint32_t ack;
    uint16_t win;
    uint8_t flags;          /* TCP flags */
    bool ns;                /* the NS/AE bit next to the data offset */
    uint16_t urg;           /* urgent pointer */
    uint8_t ttl;            /* TTL / hop limit */
    uint8_t tos;            /* IPv4 TOS / IPv6 traffic class, with ECN */
    uint32_t flow;          /* IPv6 flow label */
    bool df;
    uint16_t frag;          /* IPv4 MF and fragment offset */
    uint16_t ip_id;         /* IPv4 ID of the next frame */
    uint8_t ip_opts_len;    /* IPv4 option bytes, multiple of 4 */
    bool hbh;               /* IPv6 hop-by-hop extension header */
    bool vlan;              /* 802.1Q tag */
    uint32_t tsval, tsecr;  /* filled into a timestamp option */
    uint8_t opts[40];       /* TCP option template */
    uint8_t opts_len;
    uint8_t doff;           /* data offset in words, 0: computed */
    unsigned trailer;       /* bytes after the IP datagram */
    bool bad_tcp_csum;
    bool bad_ip_csum;
} Conn;

/* A packet the guest must receive. */
typedef struct Expect {
    int conn;               /* -1: not of a connection */
    bool coalesced;         /* a unit built from @segs, else @segs[0] */
    bool flexible;          /* may come now or only at the timer */
    GPtrArray *segs;        /* Frame * */
} Expect;

/* A packet popped from the receive ring. */
typedef struct RxPacket {
    uint8_t hdr[VNET_HDR_LEN];
    uint8_t *data;
    size_t len;
    unsigned nbufs;
    unsigned nempty;        /* buffers of length 0 among them */
} RxPacket;

typedef struct RscTest {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *vpci;
    QVirtioDevice *vdev;
    QVirtQueue *rx, *tx, *ctrl;
    int sock;               /* our end of the socketpair, or -1 */
    int pkt;                /* AF_PACKET socket bound to the tap, or -1 */
    char ifname[IFNAMSIZ];  /* the tap */
    unsigned nsent;         /* frames given to the backend */
    RscOpts opts;
    uint64_t features;
    uint32_t buf_size;
    uint64_t bufs_base;     /* guest memory of the rx buffers */
    uint16_t avail_idx;     /* rx avail index written */
    uint16_t used_idx;      /* rx used entries consumed */
    bool repost;            /* give buffers back after reading them */
    uint64_t ctrl_buf;
    GPtrArray *frames;      /* Frame *, every frame built */
    GPtrArray *conns;       /* Conn * */
    GQueue expect;          /* Expect * */
    gint64 wait_us;         /* how long rx_pop() waits, 0: RSC_TIMEOUT_US */
    char *waiting;          /* what rx_pop() waits for, for messages */
} RscTest;

G_GNUC_PRINTF(4, 5) G_NORETURN
static void rsc_fail_at(const char *file, int line, const char *func,
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

#define rsc_fail(...) rsc_fail_at(__FILE__, __LINE__, G_STRFUNC, __VA_ARGS__)

/* --- checksums ----------------------------------------------------- */

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

/* Sum of the TCP pseudo header, @l3 pointing to the IP header. */
static uint32_t pseudo_sum(const uint8_t *l3, bool v6, uint32_t tcp_len)
{
    uint32_t sum = 6 + (tcp_len >> 16) + (tcp_len & 0xffff);

    if (v6) {
        return csum_add(sum, l3 + 8, 32);
    }
    return csum_add(sum, l3 + 12, 8);
}

/* --- frames ---------------------------------------------------------- */

/* The payload byte at sequence offset @off of connection @conn. */
static uint8_t payload_byte(unsigned conn, uint32_t off)
{
    uint32_t x = (off + 1) * 0x9e3779b1u ^ (conn + 1) * 0x85ebca6bu;

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    return x;
}

static Frame *frame_new(RscTest *t, size_t len, int conn)
{
    Frame *f = g_new0(Frame, 1);

    f->data = g_malloc0(len);
    f->len = len;
    f->conn = conn;
    f->id = t->frames->len;
    g_ptr_array_add(t->frames, f);
    return f;
}

static void frame_free(gpointer p)
{
    Frame *f = p;

    g_free(f->data);
    g_free(f);
}

/* A frame that is not a TCP segment of a test connection. */
static Frame *raw_frame(RscTest *t, const void *data, size_t len)
{
    Frame *f = frame_new(t, len, -1);

    if (len) {
        memcpy(f->data, data, len);
    }
    return f;
}

/* Offset of the timestamp values in TCP options @o/@len, or -1. */
static int ts_option_offset(const uint8_t *o, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (o[i] == 0) {
            break;
        }
        if (o[i] == 1) {
            i++;
            continue;
        }
        if (i + 1 >= len || o[i + 1] < 2 || i + o[i + 1] > len) {
            break;
        }
        if (o[i] == 8 && o[i + 1] == 10) {
            return i + 2;
        }
        i += o[i + 1];
    }
    return -1;
}

static Conn *conn_new(RscTest *t, bool v6)
{
    static const uint8_t ts_opts[] = { 1, 1, 8, 10 };
    Conn *c = g_new0(Conn, 1);

    c->idx = t->conns->len;
    c->v6 = v6;
    c->src_host = 1;
    c->sport = 40000 + c->idx;
    c->dport = 5001;
    c->isn = 0x10000000u * (c->idx % 15 + 1) + 0x1234 * c->idx + 77;
    c->ack = 0x50000000u + 0x100 * c->idx;
    c->win = 502;
    c->flags = TCP_ACK;
    c->ttl = 64;
    c->df = true;
    c->ip_id = 0x100 * c->idx + 1;
    c->tsval = 1000 + c->idx;
    c->tsecr = 500;
    memcpy(c->opts, ts_opts, sizeof(ts_opts));
    c->opts_len = 12;
    g_ptr_array_add(t->conns, c);
    return c;
}

/* Use TCP options @opts/@len for the next segments of @c. */
static void conn_set_opts(Conn *c, const uint8_t *opts, size_t len)
{
    g_assert_cmpuint(len, <=, sizeof(c->opts));
    g_assert_cmpuint(len % 4, ==, 0);
    memset(c->opts, 0, sizeof(c->opts));
    if (len) {
        memcpy(c->opts, opts, len);
    }
    c->opts_len = len;
}

/* Build the TCP segment of @c at sequence offset @off with @plen bytes. */
static Frame *tcp_frame(RscTest *t, Conn *c, uint32_t off, uint32_t plen)
{
    size_t eth_len = ETH_HLEN + (c->vlan ? 4 : 0);
    size_t ip_len = c->v6 ? IP6_HLEN + (c->hbh ? 8 : 0)
                          : IP4_HLEN + c->ip_opts_len;
    size_t tcp_len = TCP_HLEN + c->opts_len;
    size_t dgram = ip_len + tcp_len + plen;
    Frame *f = frame_new(t, eth_len + dgram + c->trailer, c->idx);
    uint8_t *p = f->data;
    uint8_t *ip, *tcp;
    uint32_t i, sum;
    int ts;

    f->tcp = true;
    f->off = off;
    f->seq = c->isn + off;
    f->plen = plen;
    f->l3 = eth_len;
    f->l4 = eth_len + ip_len;
    f->hdr_len = f->l4 + tcp_len;

    memcpy(p, guest_mac, 6);
    memcpy(p + 6, peer_mac, 6);
    if (c->vlan) {
        stw_be_p(p + 12, ETH_P_8021Q);
        stw_be_p(p + 14, 5);
    }
    stw_be_p(p + eth_len - 2, c->v6 ? ETH_P_IPV6 : ETH_P_IP);

    ip = p + f->l3;
    if (c->v6) {
        stl_be_p(ip, 6u << 28 | (uint32_t)c->tos << 20 | (c->flow & 0xfffff));
        stw_be_p(ip + 4, dgram - IP6_HLEN);
        ip[6] = c->hbh ? 0 : 6;
        ip[7] = c->ttl;
        ip[8] = 0xfd;
        stw_be_p(ip + 22, c->src_host);
        ip[24] = 0xfd;
        ip[39] = 2;
        if (c->hbh) {
            /* next header TCP, length 0, PadN of 4 bytes */
            ip[40] = 6;
            ip[42] = 1;
            ip[43] = 4;
        }
    } else {
        ip[0] = 0x40 | (ip_len / 4);
        ip[1] = c->tos;
        stw_be_p(ip + 2, dgram);
        stw_be_p(ip + 4, c->ip_id++);
        stw_be_p(ip + 6, (c->df ? IP_DF : 0) | c->frag);
        ip[8] = c->ttl;
        ip[9] = 6;
        ip[12] = 10;
        stw_be_p(ip + 14, c->src_host);
        ip[16] = 10;
        ip[19] = 2;
        for (i = IP4_HLEN; i < ip_len; i++) {
            ip[i] = i + 1 < ip_len ? 1 : 0;   /* NOPs, then EOL */
        }
        stw_be_p(ip + 10, ~csum_fold(csum_add(0, ip, ip_len)) & 0xffff);
        if (c->bad_ip_csum) {
            ip[11] ^= 0x5a;
        }
    }

    tcp = p + f->l4;
    stw_be_p(tcp, c->sport);
    stw_be_p(tcp + 2, c->dport);
    stl_be_p(tcp + 4, f->seq);
    stl_be_p(tcp + 8, c->ack);
    tcp[12] = (c->doff ? c->doff : tcp_len / 4) << 4 | (c->ns ? 1 : 0);
    tcp[13] = c->flags;
    stw_be_p(tcp + 14, c->win);
    stw_be_p(tcp + 18, c->urg);
    memcpy(tcp + TCP_HLEN, c->opts, c->opts_len);
    ts = ts_option_offset(c->opts, c->opts_len);
    if (ts >= 0) {
        stl_be_p(tcp + TCP_HLEN + ts, c->tsval);
        stl_be_p(tcp + TCP_HLEN + ts + 4, c->tsecr);
    }
    for (i = 0; i < plen; i++) {
        tcp[tcp_len + i] = payload_byte(c->idx, off + i);
    }
    sum = pseudo_sum(ip, c->v6, tcp_len + plen);
    sum = csum_add(sum, tcp, tcp_len + plen);
    stw_be_p(tcp + 16, ~csum_fold(sum) & 0xffff);
    if (c->bad_tcp_csum) {
        tcp[17] ^= 0x33;
    }
    memset(tcp + tcp_len + plen, 0xee, c->trailer);
    return f;
}

/* The next in-sequence segment of @c with @plen payload bytes. */
static Frame *seg(RscTest *t, Conn *c, uint32_t plen)
{
    Frame *f = tcp_frame(t, c, c->next_off, plen);

    c->next_off += plen;
    return f;
}

/* @n in-sequence segments of @c, @plen bytes each, stored in @f. */
static void segs(RscTest *t, Conn *c, Frame **f, unsigned n, uint32_t plen)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        f[i] = seg(t, c, plen);
    }
}

/* --- describing packets -------------------------------------------- */

/* Which header field byte @off of a TCP/IP frame like @ref belongs to. */
static const char *field_name(const Frame *ref, size_t off)
{
    bool v6 = ref->data[ref->l3 - 2] == 0x86;
    size_t o;

    if (off < ref->l3) {
        return "Ethernet header";
    }
    if (off < ref->l4) {
        o = off - ref->l3;
        if (v6) {
            return o < 4 ? "IPv6 version/traffic class/flow label" :
                   o < 6 ? "IPv6 payload length" :
                   o < 7 ? "IPv6 next header" :
                   o < 8 ? "IPv6 hop limit" :
                   o < 40 ? "IPv6 address" : "IPv6 extension header";
        }
        return o < 1 ? "IPv4 version/IHL" : o < 2 ? "IPv4 TOS/ECN" :
               o < 4 ? "IPv4 total length" : o < 6 ? "IPv4 ID" :
               o < 8 ? "IPv4 flags/fragment offset" : o < 9 ? "IPv4 TTL" :
               o < 10 ? "IPv4 protocol" : o < 12 ? "IPv4 header checksum" :
               o < 20 ? "IPv4 address" : "IPv4 options";
    }
    if (off < ref->hdr_len) {
        o = off - ref->l4;
        return o < 4 ? "TCP ports" : o < 8 ? "TCP sequence number" :
               o < 12 ? "TCP acknowledgment number" :
               o < 13 ? "TCP data offset/NS" : o < 14 ? "TCP flags" :
               o < 16 ? "TCP window" : o < 18 ? "TCP checksum" :
               o < 20 ? "TCP urgent pointer" : "TCP options (timestamps)";
    }
    return "payload";
}

/* A one-line summary of an Ethernet frame. */
static char *describe_frame(RscTest *t, const uint8_t *p, size_t len)
{
    size_t l3 = ETH_HLEN, l4;
    uint16_t type;
    bool v6;
    unsigned i;

    if (len < ETH_HLEN) {
        return g_strdup_printf("%zu-byte runt", len);
    }
    type = lduw_be_p(p + 12);
    if (type == ETH_P_8021Q && len >= 18) {
        type = lduw_be_p(p + 16);
        l3 = 18;
    }
    v6 = type == ETH_P_IPV6;
    if (type != ETH_P_IP && !v6) {
        return g_strdup_printf("%zu-byte frame of ethertype 0x%04x", len,
                               type);
    }
    if (len < l3 + (v6 ? IP6_HLEN : IP4_HLEN)) {
        return g_strdup_printf("%zu-byte IPv%d frame, not a whole IP header",
                               len, v6 ? 6 : 4);
    }
    l4 = v6 ? l3 + IP6_HLEN : l3 + (p[l3] & 0xf) * 4;
    if (len < l4 + TCP_HLEN || p[v6 ? l3 + 6 : l3 + 9] != 6) {
        return g_strdup_printf("%zu-byte IPv%d frame, not a whole TCP "
                               "header", len, v6 ? 6 : 4);
    }
    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->v6 == v6 && c->sport == lduw_be_p(p + l4)) {
            size_t hl = l4 + (p[l4 + 12] >> 4) * 4;

            return g_strdup_printf(
                "%zu-byte frame of conn %u (IPv%d), seq offset %u, "
                "payload %zd, TCP flags 0x%02x", len, c->idx, v6 ? 6 : 4,
                ldl_be_p(p + l4 + 4) - c->isn,
                (ssize_t)len - (ssize_t)hl, p[l4 + 13]);
        }
    }
    return g_strdup_printf("%zu-byte IPv%d TCP frame, ports %u->%u", len,
                           v6 ? 6 : 4, lduw_be_p(p + l4),
                           lduw_be_p(p + l4 + 2));
}

static char *describe_expect(const Expect *e)
{
    Frame *a = g_ptr_array_index(e->segs, 0);
    Frame *b = g_ptr_array_index(e->segs, e->segs->len - 1);

    if (!e->coalesced) {
        return g_strdup_printf("frame #%u (conn %d, seq offset %u, payload "
                               "%u) untouched", a->id, a->conn, a->off,
                               a->plen);
    }
    return g_strdup_printf("unit of conn %d from %u frames #%u..#%u (seq "
                           "offsets %u..%u)", e->conn, e->segs->len, a->id,
                           b->id, a->off, b->off + b->plen);
}

static void hexdump(const char *what, const uint8_t *p, size_t len)
{
    g_autoptr(GString) s = g_string_new(NULL);
    size_t i;

    for (i = 0; i < len && i < 128; i++) {
        g_string_append_printf(s, "%s%02x", i % 16 ? " " : "\n  ", p[i]);
    }
    g_test_message("%s (%zu bytes):%s", what, len, s->str);
}


/* --- the tap backend ----------------------------------------------------- */

static bool write_file(const char *path, const char *text, char **err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t r = -1;

    if (fd >= 0) {
        r = write(fd, text, strlen(text));
        close(fd);
    }
    if (r != strlen(text)) {
        *err = g_strdup_printf("writing '%s' to %s: %s", text, path,
                               strerror(errno));
        return false;
    }
    return true;
}

/*
 * Set @name up without IFF_MULTICAST (no IGMP reports reach the guest)
 * and, if @bridge, make it a port of the bridge.
 */
static bool link_up(const char *name, bool bridge, char **err)
{
    struct ifreq ifr = { 0 };
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool ok;

    pstrcpy(ifr.ifr_name, IFNAMSIZ, name);
    ifr.ifr_mtu = 9000;
    ok = s >= 0 && ioctl(s, SIOCSIFMTU, &ifr) == 0 &&
         ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = (ifr.ifr_flags | IFF_UP) & ~IFF_MULTICAST;
    ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    if (ok && bridge) {
        ifr.ifr_ifindex = if_nametoindex(name);
        pstrcpy(ifr.ifr_name, IFNAMSIZ, "rscbr0");
        ok = ioctl(s, SIOCBRADDIF, &ifr) == 0;
    }
    if (!ok) {
        *err = g_strdup_printf("configuring %s: %s", name, strerror(errno));
    }
    if (s >= 0) {
        close(s);
    }
    return ok;
}

/*
 * Create a tap with vnet headers, up, with no IPv6 chatter, and an
 * AF_PACKET socket (PACKET_VNET_HDR) bound to it in *@pkt.  Returns the
 * tap fd (inherited by QEMU), or -1 with *@err set.
 */
static int tap_open(int *pkt, char *ifname, char **err)
{
    struct ifreq ifr = { 0 };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET };
    int fd, one = 1;

    *pkt = -1;
    fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) {
        *err = g_strdup_printf("open /dev/net/tun: %s", strerror(errno));
        return -1;
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    pstrcpy(ifr.ifr_name, IFNAMSIZ, "rsc%d");
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        *err = g_strdup_printf("TUNSETIFF: %s", strerror(errno));
        goto fail;
    }
    if (!link_up(ifr.ifr_name, gro_fd >= 0, err)) {
        goto fail;
    }
    *pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    sll.sll_ifindex = if_nametoindex(ifr.ifr_name);
    if (*pkt < 0 ||
        setsockopt(*pkt, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ||
        bind(*pkt, (struct sockaddr *)&sll, sizeof(sll))) {
        *err = g_strdup_printf("AF_PACKET socket with PACKET_VNET_HDR on "
                               "%s: %s", ifr.ifr_name, strerror(errno));
        goto fail;
    }
    pstrcpy(ifname, IFNAMSIZ, ifr.ifr_name);
    return fd;

fail:
    if (*pkt >= 0) {
        close(*pkt);
        *pkt = -1;
    }
    close(fd);
    return -1;
}

/* Create the bridge and the NAPI tap of the DATA_VALID path. */
static void gro_setup(void)
{
    struct ifreq ifr = { 0 };
    char *err = NULL;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_NAPI;
    pstrcpy(ifr.ifr_name, IFNAMSIZ, "rscgro0");
    if (s < 0 || fd < 0 || ioctl(s, SIOCBRADDBR, "rscbr0") < 0 ||
        ioctl(fd, TUNSETIFF, &ifr) < 0) {
        gro_unavailable = g_strdup_printf("the kernel refused a bridge or "
                                          "a NAPI tap: %s", strerror(errno));
    } else if (!link_up("rscbr0", false, &err) ||
               !link_up("rscgro0", true, &err)) {
        gro_unavailable = err;
    }
    if (s >= 0) {
        close(s);
    }
    if (gro_unavailable) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    gro_fd = fd;
}

/*
 * Enter a private network namespace (and a user namespace when not root)
 * for the tap tests.  Must run before any thread exists.  On failure,
 * tap_unavailable says why.
 */
static void tap_netns_setup(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    char ifname[IFNAMSIZ];
    char *err = NULL;
    int pkt, fd;

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
    if (uid) {
        g_autofree char *umap = g_strdup_printf("0 %u 1", uid);
        g_autofree char *gmap = g_strdup_printf("0 %u 1", gid);

        if (!write_file("/proc/self/setgroups", "deny", &err) ||
            !write_file("/proc/self/uid_map", umap, &err) ||
            !write_file("/proc/self/gid_map", gmap, &err)) {
            tap_unavailable = err;
            return;
        }
    }
    /* no IPv6 autoconfiguration traffic on the links we create */
    write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", &err);
    g_clear_pointer(&err, g_free);
    write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", &err);
    g_clear_pointer(&err, g_free);
    /* nor the IGMP report of the bridge joining 224.0.0.106 */
    write_file("/proc/sys/net/ipv4/igmp_link_local_mcast_reports", "0", &err);
    g_clear_pointer(&err, g_free);
    fd = tap_open(&pkt, ifname, &err);
    if (fd < 0) {
        tap_unavailable = g_strdup_printf("the kernel refused a tap in a "
                                          "private network namespace: %s",
                                          err);
        g_free(err);
        return;
    }
    close(pkt);
    close(fd);
    gro_setup();
}

/* --- the device and the guest driver -------------------------------- */

static void rx_post(RscTest *t, uint16_t desc)
{
    uint16_t le = cpu_to_le16(desc);
    uint16_t slot = t->avail_idx % t->rx->size;

    qtest_memwrite(t->qts, t->rx->avail + 4 + 2 * slot, &le, 2);
    t->avail_idx++;
    le = cpu_to_le16(t->avail_idx);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
}

static void rx_kick(RscTest *t)
{
    t->vdev->bus->virtqueue_kick(t->vdev, t->rx);
}

/* Fill the rx descriptor table and post the first @n buffers. */
static void rx_setup(RscTest *t, unsigned n)
{
    uint32_t size = t->rx->size;
    g_autofree uint8_t *desc = g_malloc0(size * 16);
    g_autofree uint16_t *ring = g_new0(uint16_t, size);
    uint16_t le;
    uint32_t i;

    t->bufs_base = guest_alloc(&t->alloc, (uint64_t)size * t->buf_size);
    for (i = 0; i < size; i++) {
        stq_le_p(desc + 16 * i, t->bufs_base + (uint64_t)i * t->buf_size);
        stl_le_p(desc + 16 * i + 8, t->buf_size);
        stw_le_p(desc + 16 * i + 12, VRING_DESC_F_WRITE);
        ring[i] = cpu_to_le16(i);
    }
    qtest_bufwrite(t->qts, t->rx->desc, desc, size * 16);
    g_assert_cmpuint(n, <=, size);
    qtest_bufwrite(t->qts, t->rx->avail + 4, ring, n * 2);
    t->avail_idx = n;
    t->used_idx = 0;
    le = cpu_to_le16(n);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
    rx_kick(t);
}

/* Wait for a used element on @vq and return its index. */
static uint16_t used_idx(RscTest *t, QVirtQueue *vq)
{
    uint16_t le;

    qtest_memread(t->qts, vq->used + 2, &le, 2);
    return le16_to_cpu(le);
}

/* Send CTRL_GUEST_OFFLOADS_SET with @offloads; returns the ack byte. */
static uint8_t ctrl_offloads(RscTest *t, uint64_t offloads)
{
    uint8_t cmd[10] = { VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                        VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET };
    uint16_t before = used_idx(t, t->ctrl);
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    uint32_t head;

    stq_le_p(cmd + 2, offloads);
    qtest_memwrite(t->qts, t->ctrl_buf, cmd, sizeof(cmd));
    qtest_writeb(t->qts, t->ctrl_buf + 16, 0xff);
    head = qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf, sizeof(cmd),
                          false, true);
    qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf + 16, 1, true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->ctrl, head);
    while (used_idx(t, t->ctrl) == before) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("no answer to CTRL_GUEST_OFFLOADS_SET 0x%" PRIx64,
                     offloads);
        }
    }
    t->ctrl->last_used_idx++;
    return qtest_readb(t->qts, t->ctrl_buf + 16);
}

/* Negotiate, set up the queues and post the receive buffers. */
static void rsc_driver_init(RscTest *t)
{
    uint64_t host, want;

    qvirtio_start_device(t->vdev);
    host = qvirtio_get_features(t->vdev);
    want = RSC_FEATURES;
    if (t->opts.mergeable) {
        want |= BIT(VIRTIO_NET_F_MRG_RXBUF);
    }
    if (t->opts.no_rsc_ext) {
        want &= ~BIT(VIRTIO_NET_F_RSC_EXT);
    }
    if ((host & want) != want) {
        rsc_fail("device offers features 0x%016" PRIx64 ", the test needs "
                 "0x%016" PRIx64 " (missing 0x%016" PRIx64 ")", host, want,
                 want & ~host);
    }
    qvirtio_set_features(t->vdev, want);
    t->features = want;
    t->rx = qvirtqueue_setup(t->vdev, &t->alloc, 0);
    t->tx = qvirtqueue_setup(t->vdev, &t->alloc, 1);
    t->ctrl = qvirtqueue_setup(t->vdev, &t->alloc, 2);
    qvirtio_set_driver_ok(t->vdev);
    rx_setup(t, t->opts.nbufs ? t->opts.nbufs : t->rx->size);
}

/* Append the machine and device options of @opts to @args. */
static void rsc_machine_args(GString *args, const RscOpts *opts)
{
    g_string_append_printf(args, "-M pc -m 512 -nodefaults "
                           "-device virtio-net-pci,netdev=n0,id=net0,"
                           "addr=%d.0,disable-legacy=on,romfile=,"
                           "rx_queue_size=%d,guest_rsc_ext=on,mrg_rxbuf=%s",
                           RSC_PCI_SLOT, RX_RING_SIZE,
                           opts->mergeable ? "on" : "off");
    if (!opts->default_interval) {
        g_string_append_printf(args, ",rsc_interval=%u", opts->interval);
    }
    if (opts->max_flows) {
        g_string_append_printf(args, ",rsc_max_flows=%u", opts->max_flows);
    }
}

static RscTest *rsc_start(const RscOpts *opts)
{
    RscTest *t = g_new0(RscTest, 1);
    g_autoptr(GString) args = g_string_new(NULL);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(RSC_PCI_SLOT, 0) };
    int sv[2];

    t->opts = *opts;
    t->frames = g_ptr_array_new_with_free_func(frame_free);
    t->conns = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&t->expect);
    t->repost = true;
    t->buf_size = opts->buf_size ? opts->buf_size :
                  opts->mergeable ? MRG_BUF_SIZE : BIG_BUF_SIZE;

    if (opts->tap) {
        g_autofree char *err = NULL;

        sv[1] = tap_open(&t->pkt, t->ifname, &err);
        if (sv[1] < 0) {
            rsc_fail("tap backend: %s", err);
        }
        t->sock = -1;
        g_string_append_printf(args, "-netdev tap,fd=%d,id=n0,vhost=off ",
                               sv[1]);
    } else {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        t->sock = sv[0];
        t->pkt = -1;
        g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    }
    rsc_machine_args(args, opts);
    t->qts = qtest_init(args->str);
    close(sv[1]);

    pc_alloc_init(&t->alloc, t->qts, 0);
    t->bus = qpci_new_pc(t->qts, &t->alloc);
    t->vpci = virtio_pci_new(t->bus, &addr);
    g_assert_nonnull(t->vpci);
    t->vdev = &t->vpci->vdev;
    g_assert_cmpuint(t->vdev->device_type, ==, VIRTIO_ID_NET);
    qvirtio_pci_device_enable(t->vpci);
    t->ctrl_buf = guest_alloc(&t->alloc, 64);
    rsc_driver_init(t);

    if (!opts->no_rsc_ext) {
        g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    }
    return t;
}

static void expect_free(gpointer p)
{
    Expect *e = p;

    g_ptr_array_unref(e->segs);
    g_free(e);
}

static void rsc_end(RscTest *t)
{
    if (!g_queue_is_empty(&t->expect)) {
        g_autofree char *d = describe_expect(g_queue_peek_head(&t->expect));

        rsc_fail("test ended with %u expected packets not checked, first: "
                 "%s", g_queue_get_length(&t->expect), d);
    }
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
    g_free(t->waiting);
    g_free(t);
}

/* --- sending --------------------------------------------------------- */

/* Write @n frames to the backend in one write(): one receive burst. */
static void send_frames(RscTest *t, Frame **f, unsigned n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    unsigned i;
    size_t done = 0;

    t->nsent += n;
    if (t->pkt >= 0) {
        for (i = 0; i < n; i++) {
            struct iovec iov[2] = {
                { .iov_base = f[i]->tx_vhdr, .iov_len = 10 },
                { .iov_base = f[i]->data, .iov_len = f[i]->len },
            };
            ssize_t r = writev(f[i]->via_gro ? gro_fd : t->pkt, iov, 2);

            if (r != 10 + f[i]->len) {
                rsc_fail("injecting frame #%u (%zu bytes) into the tap: %s",
                         f[i]->id, f[i]->len, strerror(errno));
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
            rsc_fail("writing %u frames to the socket backend: %s", n,
                     strerror(errno));
        }
        done += r;
    }
}

static void send1(RscTest *t, Frame *f)
{
    send_frames(t, &f, 1);
}

/*
 * Wait until QEMU has read everything we wrote to the socket.  The socket
 * backend processes what it reads in the same main loop callback, so one
 * more qtest round trip afterwards means the frames reached the device
 * (or its queue, when the guest has no buffer).
 */
/* Frames QEMU has read from the tap: tun counts them as transmitted. */
static uint64_t tap_frames_read(RscTest *t)
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

static void backend_sync(RscTest *t)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    int outq;

    while (t->pkt >= 0 && tap_frames_read(t) < t->nsent) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("QEMU read %" PRIu64 " of %u frames from the tap",
                     tap_frames_read(t), t->nsent);
        }
        used_idx(t, t->rx);
    }
    if (t->pkt >= 0) {
        used_idx(t, t->rx);
        return;
    }

    for (;;) {
        g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
        if (outq == 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("QEMU did not read %d bytes from the socket", outq);
        }
        used_idx(t, t->rx);
    }
    used_idx(t, t->rx);
}

static void clock_step(RscTest *t, int64_t ns)
{
    backend_sync(t);
    qtest_clock_step(t->qts, ns);
}

/* --- counters ---------------------------------------------------------- */

static QDict *rsc_stats(RscTest *t)
{
    QDict *rsp, *ret;

    rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/net0',"
                    " 'property': 'rsc-stats' } }");
    if (qdict_haskey(rsp, "error")) {
        QDict *err = qdict_get_qdict(rsp, "error");

        rsc_fail("qom-get net0 rsc-stats failed: %s",
                 qdict_get_try_str(err, "desc"));
    }
    ret = qdict_get_qdict(rsp, "return");
    g_assert_nonnull(ret);
    qobject_ref(ret);
    qobject_unref(rsp);
    return ret;
}

static uint64_t stats_get(QDict *s, const char *name)
{
    QNum *n = qobject_to(QNum, qdict_get(s, name));
    uint64_t v;

    if (!n || !qnum_get_try_uint(n, &v)) {
        rsc_fail("rsc-stats has no uint64 counter '%s'", name);
    }
    return v;
}

static uint64_t rsc_stat(RscTest *t, const char *name)
{
    g_autoptr(QDict) s = NULL;

    backend_sync(t);
    s = rsc_stats(t);
    return stats_get(s, name);
}

#define assert_stat(t, name, cmp, val) do {                              \
        uint64_t v_ = rsc_stat(t, name);                                  \
        uint64_t want_ = (val);                                           \
        if (!(v_ cmp want_)) {                                            \
            rsc_fail("counter %s is %" PRIu64 ", expected " #cmp " %"     \
                     PRIu64, name, v_, want_);                            \
        }                                                                 \
    } while (0)

/* --- receiving --------------------------------------------------------- */

static void rx_packet_free(RxPacket *p)
{
    g_free(p->data);
    p->data = NULL;
}

static bool rx_ready(RscTest *t)
{
    return used_idx(t, t->rx) != t->used_idx;
}

/* Pop one used element (waiting up to the timeout): its id and length. */
static void rx_pop_elem(RscTest *t, uint32_t *id, uint32_t *len)
{
    gint64 deadline = g_get_monotonic_time() +
                      (t->wait_us ? t->wait_us : RSC_TIMEOUT_US);
    uint8_t elem[8];
    uint64_t a;

    while (!rx_ready(t)) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("timed out waiting for %s%s",
                     t->waiting ? t->waiting : "a used rx buffer",
                     t->wait_us ? " (it must come without a clock step)"
                                : "");
        }
    }
    a = t->rx->used + 4 + 8 * (t->used_idx % t->rx->size);
    qtest_memread(t->qts, a, elem, sizeof(elem));
    t->used_idx++;
    *id = ldl_le_p(elem);
    *len = ldl_le_p(elem + 4);
    if (*id >= t->rx->size) {
        rsc_fail("used element with id %u, ring size %u", *id,
                 t->rx->size);
    }
    if (*len > t->buf_size) {
        rsc_fail("used element %u with length %u, buffer size %u", *id,
                 *len, t->buf_size);
    }
}

static uint64_t rx_buf(RscTest *t, uint32_t id)
{
    return t->bufs_base + (uint64_t)id * t->buf_size;
}

/* Pop the next packet, gathering num_buffers buffers when mergeable. */
static void rx_pop(RscTest *t, RxPacket *p)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autofree uint32_t *ids = NULL;
    uint32_t id, len;
    unsigned i, n = 1;

    rx_pop_elem(t, &id, &len);
    if (len < VNET_HDR_LEN) {
        rsc_fail("used length %u is shorter than the vnet header", len);
    }
    g_byte_array_set_size(b, len);
    qtest_bufread(t->qts, rx_buf(t, id), b->data, len);
    memcpy(p->hdr, b->data, VNET_HDR_LEN);
    if (t->opts.mergeable) {
        n = lduw_le_p(p->hdr + 10);
        if (n < 1 || n > t->rx->size) {
            rsc_fail("num_buffers is %u", n);
        }
    }
    ids = g_new(uint32_t, n);
    ids[0] = id;
    p->nempty = 0;
    for (i = 1; i < n; i++) {
        size_t old = b->len;

        rx_pop_elem(t, &ids[i], &len);
        if (!len) {
            /* check_packet() tells why num_buffers is too large */
            p->nempty++;
            continue;
        }
        g_byte_array_set_size(b, old + len);
        qtest_bufread(t->qts, rx_buf(t, ids[i]), b->data + old, len);
    }
    p->nbufs = n;
    p->len = b->len - VNET_HDR_LEN;
    p->data = g_memdup2(b->data + VNET_HDR_LEN, p->len);
    if (t->repost) {
        for (i = 0; i < n; i++) {
            rx_post(t, ids[i]);
        }
        rx_kick(t);
    }
}

/* Assert that nothing was delivered (after the backend was read). */
static void assert_idle(RscTest *t, const char *why)
{
    backend_sync(t);
    if (rx_ready(t)) {
        RxPacket p;
        g_autofree char *d = NULL;

        rx_pop(t, &p);
        d = describe_frame(t, p.data, p.len);
        rx_packet_free(&p);
        rsc_fail("expected no delivery (%s), but the guest got a %s", why,
                 d);
    }
}

/* --- expectations ------------------------------------------------------ */

static void expect_frame(RscTest *t, Frame *f)
{
    Expect *e = g_new0(Expect, 1);

    e->conn = f->conn;
    e->segs = g_ptr_array_new();
    g_ptr_array_add(e->segs, f);
    g_queue_push_tail(&t->expect, e);
}

static void expect_frames(RscTest *t, Frame **f, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        expect_frame(t, f[i]);
    }
}

/*
 * Expect one packet coalesced from @f[0..n-1].  Frames without payload are
 * window updates absorbed into the unit.  A unit of one data segment is
 * expected untouched.
 */
static void expect_unit(RscTest *t, Frame **f, unsigned n)
{
    Expect *e = g_new0(Expect, 1);
    unsigned i, data = 0;

    e->conn = f[0]->conn;
    e->segs = g_ptr_array_new();
    for (i = 0; i < n; i++) {
        g_assert_cmpint(f[i]->conn, ==, e->conn);
        g_ptr_array_add(e->segs, f[i]);
        data += f[i]->plen > 0;
    }
    e->coalesced = n > 1;
    g_assert(data >= 1);
    g_queue_push_tail(&t->expect, e);
}

/*
 * Build the packet the device must make of @segs: its frame and its vnet
 * header (10 bytes, little endian).
 */
static GByteArray *build_unit(GPtrArray *segs, uint8_t *vhdr)
{
    Frame *first = g_ptr_array_index(segs, 0);
    Frame *last = first;
    GByteArray *u = g_byte_array_new();
    size_t l3 = first->l3, l4 = first->l4, hl = first->hdr_len;
    bool v6 = first->data[l3 - 2] == 0x86;
    uint8_t ttl = 255, flags;
    uint32_t total = 0, count = 0;
    uint8_t *tcp;
    int ts_first, ts_last;
    unsigned i;

    g_byte_array_append(u, first->data, hl);
    flags = first->data[l4 + 13];
    for (i = 0; i < segs->len; i++) {
        Frame *f = g_ptr_array_index(segs, i);

        last = f;
        ttl = MIN(ttl, f->data[l3 + (v6 ? 7 : 8)]);
        flags |= f->data[f->l4 + 13] & TCP_PSH;
        if (f->plen) {
            g_byte_array_append(u, f->data + f->hdr_len, f->plen);
            total += f->plen;
            count++;
        }
    }
    if (v6) {
        stw_be_p(u->data + l3 + 4, hl - l3 - IP6_HLEN + total);
        u->data[l3 + 7] = ttl;
    } else {
        stw_be_p(u->data + l3 + 2, hl - l3 + total);
        u->data[l3 + 8] = ttl;
        stw_be_p(u->data + l3 + 10, 0);
        stw_be_p(u->data + l3 + 10,
                 ~csum_fold(csum_add(0, u->data + l3, l4 - l3)) & 0xffff);
    }
    tcp = u->data + l4;
    memcpy(tcp + 8, last->data + last->l4 + 8, 4);     /* ack */
    tcp[13] = flags;
    memcpy(tcp + 14, last->data + last->l4 + 14, 2);   /* window */
    ts_first = ts_option_offset(tcp + TCP_HLEN, hl - l4 - TCP_HLEN);
    ts_last = ts_option_offset(last->data + last->l4 + TCP_HLEN,
                               last->hdr_len - last->l4 - TCP_HLEN);
    if (ts_first >= 0 && ts_last >= 0) {
        memcpy(tcp + TCP_HLEN + ts_first,
               last->data + last->l4 + TCP_HLEN + ts_last, 8);
    }
    stw_be_p(tcp + 16, csum_fold(pseudo_sum(u->data + l3, v6,
                                            hl - l4 + total)));

    vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    vhdr[1] = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    stw_le_p(vhdr + 2, hl);
    stw_le_p(vhdr + 4, first->plen);
    stw_le_p(vhdr + 6, count);
    stw_le_p(vhdr + 8, 0);
    return u;
}

static const char *const vhdr_field[] = {
    "flags", "gso_type", "hdr_len", "hdr_len", "gso_size", "gso_size",
    "csum_start (segment count)", "csum_start (segment count)",
    "csum_offset (dup ACK count)", "csum_offset (dup ACK count)",
};

static unsigned vhdr_value(const uint8_t *h, unsigned i)
{
    return i < 2 ? h[i] : lduw_le_p(h + (i & ~1));
}

/* Compare a received packet with what @e expects; fail with details. */
static void check_packet(RscTest *t, const RxPacket *p, const Expect *e)
{
    Frame *first = g_ptr_array_index(e->segs, 0);
    g_autofree char *what = describe_expect(e);
    g_autofree char *got = describe_frame(t, p->data, p->len);
    g_autoptr(GByteArray) u = NULL;
    uint8_t vhdr[10] = { 0 };
    const uint8_t *exp;
    size_t exp_len, i;
    unsigned j;

    if (e->coalesced) {
        u = build_unit(e->segs, vhdr);
        exp = u->data;
        exp_len = u->len;
    } else {
        exp = first->data;
        exp_len = first->len;
        memcpy(vhdr, first->rx_vhdr, sizeof(vhdr));
    }
    for (j = 0; j < 10; j++) {
        if (!e->coalesced && first->any_hdr_len && (j == 2 || j == 3)) {
            continue;
        }
        if (p->hdr[j] != vhdr[j]) {
            hexdump("vnet header got", p->hdr, VNET_HDR_LEN);
            rsc_fail("expected %s: vnet header %s is %u, expected %u "
                     "(got a %s)", what, vhdr_field[j],
                     vhdr_value(p->hdr, j), vhdr_value(vhdr, j), got);
        }
    }
    if (p->len != exp_len) {
        rsc_fail("expected %s (%zu bytes), got a %s", what, exp_len, got);
    }
    for (i = 0; i < exp_len; i++) {
        if (p->data[i] == exp[i]) {
            continue;
        }
        if (e->coalesced && i >= first->hdr_len && first->conn >= 0) {
            uint32_t off = first->off + (i - first->hdr_len);
            unsigned k;

            for (k = 0; k < e->segs->len; k++) {
                Frame *f = g_ptr_array_index(e->segs, k);

                if (off >= f->off && off < f->off + f->plen) {
                    break;
                }
            }
            rsc_fail("expected %s: payload byte at seq offset %u (from "
                     "frame #%u) is 0x%02x, expected 0x%02x", what, off,
                     k < e->segs->len ?
                     ((Frame *)g_ptr_array_index(e->segs, k))->id : 0,
                     p->data[i], payload_byte(first->conn, off));
        }
        hexdump("expected", exp, MIN(exp_len, first->tcp ?
                                     first->hdr_len : exp_len));
        hexdump("got", p->data, MIN(p->len, first->tcp ?
                                    first->hdr_len : p->len));
        rsc_fail("expected %s: byte %zu (%s) is 0x%02x, expected 0x%02x",
                 what, i, first->tcp ? field_name(first, i) : "frame",
                 p->data[i], exp[i]);
    }
    if (t->opts.mergeable) {
        unsigned n = DIV_ROUND_UP(VNET_HDR_LEN + exp_len, t->buf_size);

        if (p->nbufs != n) {
            rsc_fail("expected %s: num_buffers %u (%u of them empty), "
                     "expected %u for a %zu-byte frame in %u-byte buffers",
                     what, p->nbufs, p->nempty, n, exp_len, t->buf_size);
        }
    }
}

/* The connection a received frame belongs to, or -1. */
static int rx_conn(RscTest *t, const RxPacket *p)
{
    size_t l3 = ETH_HLEN, l4;
    uint16_t type;
    unsigned i;

    if (p->len < ETH_HLEN) {
        return -1;
    }
    type = lduw_be_p(p->data + 12);
    if (type == ETH_P_8021Q && p->len >= 18) {
        type = lduw_be_p(p->data + 16);
        l3 = 18;
    }
    if (type == ETH_P_IP && p->len > l3) {
        l4 = l3 + (p->data[l3] & 0xf) * 4;
    } else if (type == ETH_P_IPV6) {
        l4 = l3 + IP6_HLEN;
        if (p->len > l3 + 6 && p->data[l3 + 6] == 0) {
            l4 += 8;
        }
    } else {
        return -1;
    }
    if (p->len < l4 + 4) {
        return -1;
    }
    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->v6 == (type == ETH_P_IPV6) &&
            c->sport == lduw_be_p(p->data + l4) &&
            c->dport == lduw_be_p(p->data + l4 + 2)) {
            return i;
        }
    }
    return -1;
}

static bool same_bytes(const RxPacket *p, const Frame *f)
{
    return p->len == f->len && !memcmp(p->data, f->data, f->len);
}

/* Is there an expectation that check_expected() must wait for? */
static bool expect_pending(RscTest *t, bool required_only)
{
    GList *l;

    for (l = t->expect.head; l; l = l->next) {
        Expect *x = l->data;

        if (!required_only || !x->flexible) {
            return true;
        }
    }
    return false;
}

/*
 * Receive expected packets and check them.  Packets of one connection
 * must arrive in the order they were expected; packets of different
 * connections may interleave.  With @required_only, flexible
 * expectations are matched if their packet is already there, and left
 * for later otherwise.  Fails on anything unexpected.
 */
static void check_expected_full(RscTest *t, bool required_only)
{
    for (;;) {
        RxPacket p;
        Expect *e = NULL, *head = NULL;
        GList *l;
        int conn;

        if (!expect_pending(t, required_only) &&
            (g_queue_is_empty(&t->expect) || !rx_ready(t))) {
            break;
        }
        g_free(t->waiting);
        t->waiting = describe_expect(g_queue_peek_head(&t->expect));
        rx_pop(t, &p);
        g_clear_pointer(&t->waiting, g_free);
        conn = rx_conn(t, &p);
        for (l = t->expect.head; l; l = l->next) {
            Expect *x = l->data;

            if (x->conn == conn) {
                head = e = x;
                break;
            }
        }
        if (!e || (e->coalesced &&
                   !(p.hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO)) ||
            (!e->coalesced &&
             !same_bytes(&p, g_ptr_array_index(e->segs, 0)))) {
            /* not the next packet of its connection: match by content */
            for (l = t->expect.head; l; l = l->next) {
                Expect *x = l->data;

                if (!x->coalesced &&
                    same_bytes(&p, g_ptr_array_index(x->segs, 0))) {
                    e = x;
                    break;
                }
            }
            if (e && head && e != head && e->conn == head->conn) {
                g_autofree char *d = describe_expect(e);
                g_autofree char *h = describe_expect(head);

                rsc_fail("connection order broken: got %s before %s", d,
                         h);
            }
        }
        if (!e) {
            g_autofree char *d = describe_frame(t, p.data, p.len);
            g_autofree char *h = describe_expect(
                g_queue_peek_head(&t->expect));

            rsc_fail("unexpected packet: %s (vnet flags 0x%x, %u segments)"
                     "; still expecting %u packets, first: %s", d, p.hdr[0],
                     lduw_le_p(p.hdr + 6), g_queue_get_length(&t->expect),
                     h ? h : "none");
        }
        check_packet(t, &p, e);
        g_queue_remove(&t->expect, e);
        expect_free(e);
        rx_packet_free(&p);
    }
    assert_idle(t, "all expected packets were received");
}

static void check_expected(RscTest *t)
{
    check_expected_full(t, false);
}

/*
 * Stream check for tests that do not fix unit boundaries: every packet of
 * a connection must start where the previous one ended and be either one
 * of the frames sent (untouched) or the unit of the next csum_start
 * frames.  @next holds, per connection, the index into its data frames.
 */
static void check_stream_packet(RscTest *t, const RxPacket *p,
                                GPtrArray **conn_frames, unsigned *next)
{
    int conn = rx_conn(t, p);
    Expect e = { .conn = conn };
    unsigned n = 1, i;

    if (conn < 0) {
        g_autofree char *d = describe_frame(t, p->data, p->len);

        rsc_fail("packet of no test connection: %s", d);
    }
    if (p->hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        n = lduw_le_p(p->hdr + 6);
        e.coalesced = true;
    }
    if (n == 0 || next[conn] + n > conn_frames[conn]->len) {
        rsc_fail("conn %d: packet claims %u segments from segment %u, %u "
                 "were sent", conn, n, next[conn], conn_frames[conn]->len);
    }
    e.segs = g_ptr_array_new();
    for (i = 0; i < n; i++) {
        g_ptr_array_add(e.segs, g_ptr_array_index(conn_frames[conn],
                                                  next[conn] + i));
    }
    check_packet(t, p, &e);
    g_ptr_array_unref(e.segs);
    next[conn] += n;
}

/* --- generic test scaffolding ----------------------------------------- */

static RscOpts timer_opts(const void *data)
{
    const RscVariant *v = data;
    RscOpts o = {
        .interval = RSC_INTERVAL,
        .mergeable = v->mergeable,
        .tap = v->tap,
    };

    return o;
}

static RscOpts burst_opts(const void *data)
{
    RscOpts o = timer_opts(data);

    o.interval = 0;
    return o;
}

/*
 * Send @n frames in one burst, check that nothing is delivered before the
 * interval has passed, step the clock and check the expectations.
 */
static void send_hold_expire(RscTest *t, Frame **f, unsigned n)
{
    send_frames(t, f, n);
    clock_step(t, RSC_INTERVAL - 1);
    assert_idle(t, "units are held until rsc_interval has passed");
    clock_step(t, 1);
    check_expected(t);
}

/*
 * Check the expectations; they must be delivered without a clock step
 * (flushed by the frame that arrived, not by the timer).
 */
static void check_now(RscTest *t)
{
    backend_sync(t);
    t->wait_us = 2 * G_USEC_PER_SEC;
    check_expected_full(t, true);
    t->wait_us = 0;
}

/* Step over the interval and check the expectations. */
static void expire_and_check(RscTest *t)
{
    clock_step(t, RSC_INTERVAL - 1);
    assert_idle(t, "units are held until rsc_interval has passed");
    clock_step(t, 1);
    check_expected(t);
}

/*
 * Hold a unit of three segments on each connection of @c[0..n-1], sent
 * in one burst, and expect the units.
 */
static void hold_units(RscTest *t, Conn **c, unsigned n)
{
    g_autofree Frame **f = g_new(Frame *, 3 * n);
    g_autofree Frame **all = g_new(Frame *, 3 * n);
    unsigned i, j;

    for (i = 0; i < n; i++) {
        segs(t, c[i], f + 3 * i, 3, MSS);
    }
    for (j = 0; j < 3; j++) {
        for (i = 0; i < n; i++) {
            all[j * n + i] = f[3 * i + j];
        }
    }
    send_frames(t, all, 3 * n);
    assert_idle(t, "the units are held");
    for (i = 0; i < n; i++) {
        expect_unit(t, f + 3 * i, 3);
    }
}

/*
 * Have a unit of @c delivered at once (its last segment is short), and
 * leave it in the used ring, not yet read by the guest.
 */
static void deliver_unread(RscTest *t, Conn *c)
{
    Frame *f[3];

    segs(t, c, f, 2, MSS);
    f[2] = seg(t, c, 700);
    expect_unit(t, f, 3);
    send_frames(t, f, 3);
    backend_sync(t);
}

/*
 * The packet of the last expectation may come at once or only when the
 * timer fires (a unit that is held, in a burst checked with check_now()).
 */
static void expect_later(RscTest *t)
{
    ((Expect *)g_queue_peek_tail(&t->expect))->flexible = true;
}

/* --- merge: what may be merged ----------------------------------------- */

static void merge_basic(const void *data, bool v6)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, v6);
    Frame *f[4];

    segs(t, c, f, 4, MSS);
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    assert_stat(t, "segments-received", ==, 4);
    assert_stat(t, "units-delivered", ==, 1);
    assert_stat(t, "flush-timer", ==, 1);
    rsc_end(t);
}

/* Ethernet II + IPv4 + TCP segments in sequence make one unit. */
static void test_merge_ipv4(const void *data)
{
    merge_basic(data, false);
}

/* Ethernet II + IPv6 + TCP segments in sequence make one unit. */
static void test_merge_ipv6(const void *data)
{
    merge_basic(data, true);
}

/* Segments without any TCP option merge. */
static void test_merge_no_options(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    conn_set_opts(c, NULL, 0);
    conn_set_opts(c6, NULL, 0);
    segs(t, c, f, 3, 1460);
    segs(t, c6, g, 3, 1440);
    expect_unit(t, f, 3);
    expect_unit(t, g, 3);
    send_frames(t, f, 3);
    send_hold_expire(t, g, 3);
    rsc_end(t);
}

/*
 * The timestamp option (NOP, NOP, TS) is allowed; the unit carries TSval
 * and TSecr of the latest segment.
 */
static void test_merge_timestamps(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[5];
    unsigned i;

    for (i = 0; i < 5; i++) {
        c->tsval += i & 1;
        c->tsecr += 3;
        f[i] = seg(t, c, MSS);
    }
    expect_unit(t, f, 5);
    send_hold_expire(t, f, 5);
    rsc_end(t);
}

/* The timestamp option followed by two NOPs of padding is allowed. */
static void test_merge_timestamps_padded(const void *data)
{
    static const uint8_t opts[] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];
    unsigned i;

    conn_set_opts(c, opts, sizeof(opts));
    for (i = 0; i < 4; i++) {
        c->tsval++;
        f[i] = seg(t, c, MSS);
    }
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    rsc_end(t);
}

/* TSval is compared modulo 2^32: a wrapped TSval is newer. */
static void test_merge_timestamp_wrap(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3];

    c->tsval = 0xfffffff0u;
    f[0] = seg(t, c, MSS);
    c->tsval = 0xffffffffu;
    f[1] = seg(t, c, MSS);
    c->tsval = 5;
    f[2] = seg(t, c, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
    rsc_end(t);
}

/* Sequence numbers are contiguous modulo 2^32. */
static void test_merge_seq_wrap(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    c->isn = 0xffffffffu - 2000;
    segs(t, c, f, 4, MSS);
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    rsc_end(t);
}

/* An ACK number that stays or advances (modulo 2^32) merges. */
static void test_merge_ack_advancing(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[5];
    unsigned i;

    c->ack = 0xfffff000u;
    for (i = 0; i < 5; i++) {
        f[i] = seg(t, c, MSS);
        c->ack += i == 1 ? 0 : 0x900;
    }
    expect_unit(t, f, 5);
    send_hold_expire(t, f, 5);
    rsc_end(t);
}

/* The window may change; the unit carries the latest window. */
static void test_merge_window_change(const void *data)
{
    static const uint16_t win[] = { 502, 1000, 300, 65535, 777 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[5];
    unsigned i;

    for (i = 0; i < 5; i++) {
        c->win = win[i];
        f[i] = seg(t, c, MSS);
    }
    expect_unit(t, f, 5);
    send_hold_expire(t, f, 5);
    rsc_end(t);
}

/* PSH of any merged segment is set in the unit; PSH does not end it. */
static void test_merge_psh(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c->flags = i == 1 ? TCP_ACK | TCP_PSH : TCP_ACK;
        f[i] = seg(t, c, MSS);
    }
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    rsc_end(t);
}

static void merge_min_ttl(const void *data, bool v6)
{
    static const uint8_t ttl[] = { 64, 60, 62, 61 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, v6);
    Frame *f[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c->ttl = ttl[i];
        f[i] = seg(t, c, MSS);
    }
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    rsc_end(t);
}

/* IPv4: the unit carries the minimum TTL and the ID of the first. */
static void test_merge_ttl_minimum(const void *data)
{
    merge_min_ttl(data, false);
}

/* IPv6: the unit carries the minimum hop limit. */
static void test_merge_hop_limit_minimum(const void *data)
{
    merge_min_ttl(data, true);
}

/* A flow with DF clear merges (DF equal to the unit's). */
static void test_merge_df_clear(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    c->df = false;
    segs(t, c, f, 4, MSS);
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    rsc_end(t);
}

/* Equal ECN codepoints (ECT(0)) merge, IPv4 and IPv6. */
static void test_merge_ecn_equal(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    c->tos = 0x28 | ECN_ECT0;
    c6->tos = ECN_ECT0;
    segs(t, c, f, 3, MSS);
    segs(t, c6, g, 3, MSS);
    expect_unit(t, f, 3);
    expect_unit(t, g, 3);
    send_frames(t, f, 3);
    send_hold_expire(t, g, 3);
    rsc_end(t);
}

/* Equal ECE flags merge, and the unit keeps ECE. */
static void test_merge_ece_equal(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3];

    c->flags = TCP_ACK | TCP_ECE;
    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
    rsc_end(t);
}

/*
 * A segment shorter than the MSS is merged and ends the unit: the unit is
 * delivered at once.  The next segment starts a new unit.
 */
static void test_merge_short_segment(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c, MSS);
    f[2] = seg(t, c, 700);
    f[3] = seg(t, c, MSS);
    expect_unit(t, f, 3);
    send_frames(t, f, 4);
    check_now(t);
    assert_stat(t, "flush-short", ==, 1);
    expect_frame(t, f[3]);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * A segment with more payload than the unit's MSS flushes the unit and
 * starts a new one.
 */
static void test_merge_larger_than_mss(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];

    f[0] = seg(t, c, 1000);
    f[1] = seg(t, c, 1000);
    f[2] = seg(t, c, MSS);
    f[3] = seg(t, c, MSS);
    expect_unit(t, f, 2);
    send_frames(t, f, 4);
    check_now(t);
    expect_unit(t, f + 2, 2);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * Bytes after the IP datagram (Ethernet padding, trailers) are never
 * copied into a unit, also when the first frame is padded; a frame
 * delivered alone keeps them.
 */
static void test_merge_padding_not_copied(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Conn *c = conn_new(t, true);
    Frame *f[9];

    a->trailer = 6;
    segs(t, a, f, 3, 100);
    conn_set_opts(b, NULL, 0);
    b->trailer = 4;     /* 56-byte frames padded to 60 */
    segs(t, b, f + 3, 3, 2);
    c->trailer = 8;
    f[6] = seg(t, c, MSS);
    c->trailer = 0;
    f[7] = seg(t, c, MSS);
    c->trailer = 3;
    f[8] = seg(t, c, MSS);
    expect_unit(t, f, 3);
    expect_unit(t, f + 3, 3);
    expect_unit(t, f + 6, 3);
    send_hold_expire(t, f, 9);
    rsc_end(t);
}

/* A padded segment held alone is delivered with its padding. */
static void test_hdr_single_padded(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f;

    conn_set_opts(c, NULL, 0);
    c->trailer = 4;
    f = seg(t, c, 2);
    expect_frame(t, f);
    send_hold_expire(t, &f, 1);
    rsc_end(t);
}

/* --- hdr: the coalesced packet's headers ------------------------------- */

/*
 * A held segment that was never merged goes out byte for byte as it came
 * in, with an all-zero vnet header and no RSC_INFO.
 */
static void test_hdr_single_untouched(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c6, 1000);
    expect_frames(t, f, 2);
    send_hold_expire(t, f, 2);
    assert_stat(t, "units-delivered", ==, 0);
    assert_stat(t, "frames-uncoalesced", ==, 2);
    rsc_end(t);
}

/*
 * The segment count (csum_start) and the other vnet header fields are
 * little endian: 300 segments need both bytes.
 */
static void test_hdr_segment_count_le(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[300];

    segs(t, c, f, 300, 200);
    expect_unit(t, f, 300);
    send_hold_expire(t, f, 300);
    assert_stat(t, "segments-merged", >=, 299);
    rsc_end(t);
}

/* --- limit: the unit stays a legal packet ------------------------------ */

/*
 * Segments that fill a unit exactly to the limit (IPv4 total length 65535,
 * or a 65549-byte IPv6 frame) are all merged; the last, shorter one ends
 * the unit.
 */
static void limit_exact(const void *data, bool v6)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, v6);
    uint32_t room = MAX_FRAME - ETH_HLEN - (v6 ? IP6_HLEN : IP4_HLEN) - 32;
    Frame *f[66];

    segs(t, c, f, 65, 1000);
    f[65] = seg(t, c, room - 65000);
    expect_unit(t, f, 66);
    send_frames(t, f, 66);
    check_now(t);
    rsc_end(t);
}

static void test_limit_ipv4_exact(const void *data)
{
    limit_exact(data, false);
}

static void test_limit_ipv6_exact(const void *data)
{
    limit_exact(data, true);
}

/*
 * A segment that would make the unit exceed the limit flushes it (unit
 * full) and starts a new unit.
 */
static void limit_full(const void *data, bool v6)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, v6);
    Frame *f[67];

    segs(t, c, f, 67, 1000);
    expect_unit(t, f, 65);
    send_frames(t, f, 67);
    check_now(t);
    assert_stat(t, "flush-full", ==, 1);
    expect_unit(t, f + 65, 2);
    expire_and_check(t);
    rsc_end(t);
}

static void test_limit_ipv4_full(const void *data)
{
    limit_full(data, false);
}

static void test_limit_ipv6_full(const void *data)
{
    limit_full(data, true);
}

/*
 * A unit must fit the guest's receive buffer: with 16 KiB buffers (no
 * mergeable buffers) it holds 11 segments of 1448 bytes.
 */
static void test_limit_guest_buffer(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    Conn *c;
    Frame *f[13];

    o.buf_size = 16384;
    t = rsc_start(&o);
    c = conn_new(t, false);
    segs(t, c, f, 13, MSS);
    expect_unit(t, f, 11);
    send_frames(t, f, 13);
    check_now(t);
    expect_unit(t, f + 11, 2);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * With receive buffers too small for any unit, every segment still
 * reaches the guest, untouched and in order.
 */
static void test_limit_small_buffers(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    Conn *c;
    Frame *f[6];

    o.buf_size = 1526 + VNET_HDR_LEN;
    t = rsc_start(&o);
    c = conn_new(t, false);
    segs(t, c, f, 6, MSS);
    expect_frames(t, f, 6);
    send_frames(t, f, 6);
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
    rsc_end(t);
}

/* --- exception: what ends a unit ------------------------------------------ */

/*
 * Send three mergeable segments of @c, then @x (built by the caller):
 * expect the unit of the three, then @x alone, both without waiting for
 * the timer.
 */
static void flush_then_alone(RscTest *t, Frame **f, Frame *x)
{
    Frame *all[4] = { f[0], f[1], f[2], x };

    expect_unit(t, f, 3);
    expect_frame(t, x);
    send_frames(t, all, 4);
    check_now(t);
}

static void exception_flag(const void *data, uint8_t flags, uint32_t plen)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3], *x;

    segs(t, c, f, 3, MSS);
    c->flags = flags;
    c->urg = flags & TCP_URG ? 10 : 0;
    x = seg(t, c, plen);
    flush_then_alone(t, f, x);
    assert_stat(t, "bypass-tcp-flags", ==, 1);
    assert_stat(t, "flush-exception", ==, 1);
    rsc_end(t);
}

/* FIN flushes the connection's unit; the FIN segment comes alone. */
static void test_exception_fin(const void *data)
{
    exception_flag(data, TCP_ACK | TCP_FIN | TCP_PSH, 100);
}

/* RST flushes the connection's unit; the RST segment comes alone. */
static void test_exception_rst(const void *data)
{
    exception_flag(data, TCP_ACK | TCP_RST, 0);
}

/* URG flushes the connection's unit; the URG segment comes alone. */
static void test_exception_urg(const void *data)
{
    exception_flag(data, TCP_ACK | TCP_URG, MSS);
}

/* The NS/AE bit is a flag outside ACK/PSH: flush, segment alone. */
static void test_exception_other_flag(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3], *x;

    segs(t, c, f, 3, MSS);
    c->ns = true;
    x = seg(t, c, MSS);
    flush_then_alone(t, f, x);
    rsc_end(t);
}

/*
 * A SYN is delivered alone at once; it does not flush another
 * connection's unit.
 */
static void test_exception_syn(const void *data)
{
    static const uint8_t syn_opts[] = {
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 3, 7,
    };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Conn *b6 = conn_new(t, true);
    Frame *f[3], *syn[2];

    segs(t, a, f, 3, MSS);
    send_frames(t, f, 3);
    conn_set_opts(b, syn_opts, sizeof(syn_opts));
    b->flags = TCP_SYN;
    b->ack = 0;
    syn[0] = tcp_frame(t, b, 0, 0);
    conn_set_opts(b6, syn_opts, sizeof(syn_opts));
    b6->flags = TCP_SYN | TCP_ACK;
    syn[1] = tcp_frame(t, b6, 0, 0);
    expect_frames(t, syn, 2);
    send_frames(t, syn, 2);
    check_now(t);
    expect_unit(t, f, 3);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * Out-of-order data flushes the unit; the segment starts a new unit.
 */
static void test_exception_out_of_order(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c, MSS);
    c->next_off += MSS;
    f[2] = seg(t, c, MSS);
    f[3] = seg(t, c, MSS);
    expect_unit(t, f, 2);
    send_frames(t, f, 4);
    check_now(t);
    expect_unit(t, f + 2, 2);
    expire_and_check(t);
    rsc_end(t);
}

/* Retransmitted data flushes the unit and starts a new one. */
static void test_exception_retransmit(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];

    segs(t, c, f, 3, MSS);
    f[3] = tcp_frame(t, c, MSS, MSS);
    expect_unit(t, f, 3);
    send_frames(t, f, 4);
    check_now(t);
    expect_frame(t, f[3]);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * Send @f[0..1], then @f[2..3] that differ from the unit in something
 * that must end it: unit of the first two at once, then a unit of the
 * other two at the timer.
 */
static void flush_and_restart(RscTest *t, Frame **f)
{
    expect_unit(t, f, 2);
    send_frames(t, f, 4);
    check_now(t);
    assert_stat(t, "flush-exception", ==, 1);
    expect_unit(t, f + 2, 2);
    expire_and_check(t);
}

/* An older TSval flushes the unit and starts a new one. */
static void test_exception_timestamp_older(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    c->tsval = 1000;
    segs(t, c, f, 2, MSS);
    c->tsval = 999;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/* An ACK number going backwards flushes the unit. */
static void test_exception_ack_older(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    segs(t, c, f, 2, MSS);
    c->ack -= 100;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/*
 * A TCP option other than timestamps flushes the unit; that segment is
 * not mergeable and comes alone; the next one starts a new unit.
 */
static void test_exception_tcp_option(const void *data)
{
    static const uint8_t sack[] = {
        1, 1, 5, 10, 0, 0, 0x10, 0, 0, 0, 0x20, 0, 1, 1, 8, 10,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    static const uint8_t ts[] = { 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[5];

    segs(t, c, f, 3, MSS);
    conn_set_opts(c, sack, sizeof(sack));
    f[3] = seg(t, c, MSS);
    conn_set_opts(c, ts, sizeof(ts));
    f[4] = seg(t, c, MSS);
    expect_unit(t, f, 3);
    expect_frame(t, f[3]);
    send_frames(t, f, 5);
    check_now(t);
    assert_stat(t, "bypass-tcp-options", ==, 1);
    expect_frame(t, f[4]);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * A segment whose options differ in layout from the unit's (here: the
 * timestamp option appears) flushes the unit and starts a new one.
 */
static void test_exception_option_layout(const void *data)
{
    static const uint8_t ts[] = { 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    conn_set_opts(c, NULL, 0);
    segs(t, c, f, 2, MSS);
    conn_set_opts(c, ts, sizeof(ts));
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/* A change of the IP ECN codepoint flushes the unit. */
static void test_exception_ecn_change(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    c->tos = ECN_ECT0;
    segs(t, c, f, 2, MSS);
    c->tos = ECN_CE;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/* A change of ECE flushes the unit. */
static void test_exception_ece_change(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];

    segs(t, c, f, 2, MSS);
    c->flags = TCP_ACK | TCP_ECE;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/*
 * CWR on one segment: it flushes the unit before it, and the segment
 * after it (CWR clear again) flushes the unit it started.
 */
static void test_exception_cwr_change(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    segs(t, c, f, 2, MSS);
    c->flags = TCP_ACK | TCP_CWR;
    f[2] = seg(t, c, MSS);
    c->flags = TCP_ACK;
    f[3] = seg(t, c, MSS);
    expect_unit(t, f, 2);
    expect_frame(t, f[2]);
    send_frames(t, f, 4);
    check_now(t);
    expect_frame(t, f[3]);
    expire_and_check(t);
    rsc_end(t);
}

/* A change of DF flushes the unit. */
static void test_exception_df_change(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    segs(t, c, f, 2, MSS);
    c->df = false;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/* A change of the IPv6 traffic class flushes the unit. */
static void test_exception_traffic_class(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];

    segs(t, c, f, 2, MSS);
    c->tos = 0x20;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/* A change of the IPv6 flow label flushes the unit. */
static void test_exception_flow_label(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[4];

    c->flow = 0x12345;
    segs(t, c, f, 2, MSS);
    c->flow = 0x54321;
    segs(t, c, f + 2, 2, MSS);
    flush_and_restart(t, f);
    rsc_end(t);
}

/*
 * A segment with a bad TCP checksum is never merged: it flushes the unit
 * and is delivered alone, untouched; the next segment starts a new unit.
 */
static void exception_bad_checksum(const void *data, bool v6, bool ip)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, v6);
    Frame *f[5];

    segs(t, c, f, 2, MSS);
    if (ip) {
        c->bad_ip_csum = true;
    } else {
        c->bad_tcp_csum = true;
    }
    f[2] = seg(t, c, MSS);
    c->bad_ip_csum = c->bad_tcp_csum = false;
    segs(t, c, f + 3, 2, MSS);
    expect_unit(t, f, 2);
    expect_frame(t, f[2]);
    send_frames(t, f, 5);
    check_now(t);
    assert_stat(t, "bypass-checksum", ==, 1);
    expect_unit(t, f + 3, 2);
    expire_and_check(t);
    rsc_end(t);
}

static void test_exception_bad_checksum(const void *data)
{
    exception_bad_checksum(data, false, false);
}

static void test_exception_bad_checksum_ipv6(const void *data)
{
    exception_bad_checksum(data, true, false);
}

/* A bad IPv4 header checksum: never merged, delivered alone. */
static void test_exception_ip_header_checksum(const void *data)
{
    exception_bad_checksum(data, false, true);
}

/* --- pure-ack ---------------------------------------------------------- */

/*
 * A pure ACK with the same ACK number and a new window is absorbed as a
 * window update: no packet of its own, the unit takes the new window.
 */
static void test_pure_ack_window_update(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    segs(t, c, f, 3, MSS);
    c->win = 4000;
    f[3] = seg(t, c, 0);
    expect_unit(t, f, 4);
    send_hold_expire(t, f, 4);
    assert_stat(t, "window-updates", ==, 1);
    rsc_end(t);
}

/*
 * A duplicate ACK (same ACK, same window) flushes the unit and comes
 * alone; the unit's dup ACK count stays 0.
 */
static void test_pure_ack_duplicate(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[3], *x;

    segs(t, c, f, 3, MSS);
    x = seg(t, c, 0);
    flush_then_alone(t, f, x);
    assert_stat(t, "bypass-dup-ack", ==, 1);
    rsc_end(t);
}

/* Any other pure ACK flushes the unit and comes alone. */
static void test_pure_ack_advancing(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3], *x;

    segs(t, c, f, 3, MSS);
    c->ack += 1000;
    x = seg(t, c, 0);
    flush_then_alone(t, f, x);
    rsc_end(t);
}

/* A pure ACK with no unit held is delivered at once, untouched. */
static void test_pure_ack_no_unit(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, 0);
    f[1] = seg(t, c6, 0);
    expect_frames(t, f, 2);
    send_frames(t, f, 2);
    check_now(t);
    rsc_end(t);
}

/* --- bypass: never merged, delivered untouched ---------------------------- */

static void ip4_fix_csum(Frame *f)
{
    uint8_t *ip = f->data + f->l3;
    size_t hl = MAX((ip[0] & 0xf) * 4, IP4_HLEN);

    stw_be_p(ip + 10, 0);
    stw_be_p(ip + 10, ~csum_fold(csum_add(0, ip, hl)) & 0xffff);
}

/* Frames that are not TCP/IP are delivered at once, untouched. */
static void test_bypass_not_tcpip(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    uint8_t arp[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    uint8_t udp[14 + 20 + 8 + 20] = { 0 };
    uint8_t icmp6[14 + 40 + 8] = { 0 };
    uint8_t other[60] = { 0 };
    Frame *f[4];

    memcpy(arp + 6, peer_mac, 6);
    stw_be_p(arp + 12, ETH_P_ARP);
    stl_be_p(arp + 14, 0x00010800);
    stl_be_p(arp + 18, 0x06040001);

    memcpy(udp, guest_mac, 6);
    stw_be_p(udp + 12, ETH_P_IP);
    udp[14] = 0x45;
    stw_be_p(udp + 16, 48);
    udp[22] = 64;
    udp[23] = 17;
    udp[26] = 10;
    udp[29] = 1;
    udp[30] = 10;
    udp[33] = 2;
    stw_be_p(udp + 24, ~csum_fold(csum_add(0, udp + 14, 20)) & 0xffff);
    stw_be_p(udp + 34, 40000);
    stw_be_p(udp + 36, 5001);
    stw_be_p(udp + 38, 28);

    memcpy(icmp6, guest_mac, 6);
    stw_be_p(icmp6 + 12, ETH_P_IPV6);
    icmp6[14] = 0x60;
    stw_be_p(icmp6 + 18, 8);
    icmp6[20] = 58;
    icmp6[21] = 64;
    icmp6[54] = 128;

    memcpy(other, guest_mac, 6);
    stw_be_p(other + 12, 0x88b5);
    memset(other + 14, 0xa5, sizeof(other) - 14);

    f[0] = raw_frame(t, arp, sizeof(arp));
    f[1] = raw_frame(t, udp, sizeof(udp));
    f[2] = raw_frame(t, icmp6, sizeof(icmp6));
    f[3] = raw_frame(t, other, sizeof(other));
    expect_frames(t, f, 4);
    send_frames(t, f, 4);
    check_now(t);
    assert_stat(t, "bypass-not-tcpip", ==, 4);
    rsc_end(t);
}

/* TCP in an 802.1Q frame is not Ethernet II + IP: delivered untouched. */
static void test_bypass_vlan(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3];

    c->vlan = true;
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    rsc_end(t);
}

/* IPv4 with options (IHL > 5): never merged, delivered untouched. */
static void test_bypass_ipv4_options(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3];

    c->ip_opts_len = 8;
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-ip-options", ==, 3);
    rsc_end(t);
}

/*
 * IPv4 fragments (MF set, or an offset), with DF clear or set, are never
 * merged.  Their TCP checksum is computed as if they were whole, so only
 * the fragment fields make them ineligible.
 */
static void test_bypass_ipv4_fragment(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];

    c->df = false;
    c->frag = IP_MF;
    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c, MSS);
    c->df = true;
    f[2] = seg(t, c, MSS);
    c->df = false;
    c->frag = 185;
    f[3] = seg(t, c, MSS);
    expect_frames(t, f, 4);
    send_frames(t, f, 4);
    check_now(t);
    assert_stat(t, "bypass-fragment", ==, 4);
    rsc_end(t);
}

/* IPv6 with an extension header: never merged, delivered untouched. */
static void test_bypass_ipv6_ext_header(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[3];

    c->hbh = true;
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-ip-options", ==, 3);
    rsc_end(t);
}

/*
 * Malformed or truncated frames are delivered untouched, never dropped
 * and never read past their end.
 */
static void test_bypass_malformed(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    uint8_t one = 0x42;
    Frame *f[32], *whole, *whole6;
    unsigned n = 0;

    /* IPv4 total length beyond the frame */
    f[n] = seg(t, c, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 2, lduw_be_p(f[n]->data + 16) + 100);
    ip4_fix_csum(f[n++]);
    /* IPv4 total length shorter than the IP and TCP headers */
    f[n] = seg(t, c, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 2, 30);
    ip4_fix_csum(f[n++]);
    /* IHL 4 */
    f[n] = seg(t, c, MSS);
    f[n]->data[f[n]->l3] = 0x44;
    ip4_fix_csum(f[n++]);
    /* version 6 in an IPv4 ethertype */
    f[n] = seg(t, c, MSS);
    f[n]->data[f[n]->l3] = 0x65;
    ip4_fix_csum(f[n++]);
    /* TCP data offset 4 */
    c->doff = 4;
    f[n++] = seg(t, c, MSS);
    /* TCP data offset beyond the segment */
    c->doff = 15;
    f[n++] = seg(t, c, 10);
    c->doff = 0;
    /* IPv6 payload length beyond the frame */
    f[n] = seg(t, c6, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 4, MSS + 32 + 100);
    n++;
    /* IPv6 payload length shorter than the TCP header */
    f[n] = seg(t, c6, MSS);
    stw_be_p(f[n]->data + f[n]->l3 + 4, 10);
    n++;
    /* truncated headers */
    whole = seg(t, c, MSS);
    whole6 = seg(t, c6, MSS);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + 10);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN + 10);
    f[n++] = raw_frame(t, whole->data, ETH_HLEN + IP4_HLEN + 30);
    f[n++] = raw_frame(t, whole6->data, ETH_HLEN + 30);
    f[n++] = raw_frame(t, whole6->data, ETH_HLEN + IP6_HLEN + 12);
    f[n++] = raw_frame(t, whole->data, 13);
    f[n++] = raw_frame(t, &one, 1);
    expect_frames(t, f, n);
    send_frames(t, f, n);
    check_now(t);
    rsc_end(t);
}

/* --- order: per connection, nothing overtakes a held unit --------------- */

/*
 * A frame of a connection with a unit held is delivered after that unit,
 * whatever path it takes.  Unless @flexible, the unit of another
 * connection (same addresses, other ports) must stay held; otherwise it
 * may be flushed with it.
 */
static void order_after_unit(const void *data, void (*spoil)(Conn *c),
                             bool flexible)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, false);
    Frame *f[3], *g[2], *x;

    segs(t, b, g, 2, MSS);
    send_frames(t, g, 2);
    segs(t, a, f, 3, MSS);
    spoil(a);
    x = seg(t, a, MSS);
    if (flexible) {
        /* the device may flush more than the connection's unit */
        expect_unit(t, g, 2);
        ((Expect *)g_queue_peek_tail(&t->expect))->flexible = true;
    }
    flush_then_alone(t, f, x);
    if (!flexible) {
        expect_unit(t, g, 2);
    }
    expire_and_check(t);
    rsc_end(t);
}

static void spoil_ip_options(Conn *c)
{
    c->ip_opts_len = 4;
}

static void spoil_fragment(Conn *c)
{
    c->df = true;
    c->frag = IP_MF;
}

static void spoil_data_offset(Conn *c)
{
    c->doff = 4;
}

static void spoil_fin(Conn *c)
{
    c->flags = TCP_ACK | TCP_FIN;
}

static void test_order_ip_options(const void *data)
{
    order_after_unit(data, spoil_ip_options, true);
}

static void test_order_fragment(const void *data)
{
    order_after_unit(data, spoil_fragment, true);
}

static void test_order_malformed(const void *data)
{
    order_after_unit(data, spoil_data_offset, true);
}

static void test_order_other_flows(const void *data)
{
    order_after_unit(data, spoil_fin, false);
}

/* --- timer ------------------------------------------------------------- */

/*
 * Each unit is delivered rsc_interval after its first segment arrived:
 * not a nanosecond earlier, not later.
 */
static void test_timer_interval(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[2], *g[2];

    segs(t, a, f, 2, MSS);
    send_frames(t, f, 2);
    clock_step(t, 400000);
    segs(t, b, g, 2, MSS);
    send_frames(t, g, 2);
    clock_step(t, RSC_INTERVAL - 400000 - 1);
    assert_idle(t, "the first unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 2);
    check_expected(t);
    clock_step(t, 400000 - 1);
    assert_idle(t, "the second unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, g, 2);
    check_expected(t);
    assert_stat(t, "flush-timer", ==, 2);
    rsc_end(t);
}

/*
 * A unit waits at most rsc_interval after its first segment, however
 * late later segments joined; segments in gaps shorter than the interval
 * (as HLK sends them) are bridged into the unit.
 */
static void test_timer_gaps(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        f[i] = seg(t, c, MSS);
        send1(t, f[i]);
        if (i < 3) {
            clock_step(t, 300000);
        }
    }
    clock_step(t, RSC_INTERVAL - 900000 - 1);
    assert_idle(t, "the unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 4);
    check_expected(t);
    rsc_end(t);
}

/* Without rsc_interval the device waits 300000 ns. */
static void test_timer_default_interval(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    Conn *c;
    Frame *f[3];

    o.default_interval = true;
    t = rsc_start(&o);
    c = conn_new(t, false);
    segs(t, c, f, 3, MSS);
    send_frames(t, f, 3);
    clock_step(t, RSC_DEFAULT_INTERVAL - 1);
    assert_idle(t, "the unit is due 1 ns later");
    clock_step(t, 1);
    expect_unit(t, f, 3);
    check_expected(t);
    rsc_end(t);
}

/* --- burst: rsc_interval=0 --------------------------------------------- */

/*
 * rsc_interval=0: units are delivered when the receive burst ends, with
 * no clock step; the next burst makes new units.
 */
static void test_burst_end(const void *data)
{
    RscOpts o = burst_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[10], *g[8];
    unsigned i;

    segs(t, a, f, 5, MSS);
    expect_unit(t, f, 5);
    send_frames(t, f, 5);
    check_expected(t);
    segs(t, a, f + 5, 5, MSS);
    for (i = 0; i < 4; i++) {
        g[2 * i] = f[5 + i];
        g[2 * i + 1] = seg(t, b, 1000);
    }
    g[7] = f[9];
    send_frames(t, g, 8);
    g[0] = g[1];
    g[1] = g[3];
    g[2] = g[5];
    expect_unit(t, f + 5, 5);
    expect_unit(t, g, 3);
    check_expected(t);
    assert_stat(t, "flush-burst-end", ==, 3);
    assert_stat(t, "flush-timer", ==, 0);
    rsc_end(t);
}

/* rsc_interval=0: a burst of one segment delivers it untouched. */
static void test_burst_single(const void *data)
{
    RscOpts o = burst_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f = seg(t, c, MSS);

    expect_frame(t, f);
    send1(t, f);
    check_expected(t);
    rsc_end(t);
}

/* --- flows ------------------------------------------------------------- */

/*
 * 64 connections (32 IPv4, 32 IPv6), segments interleaved round robin:
 * one unit per connection.
 */
static void test_flows_interleaved(const void *data)
{
    enum { NCONN = 64, NSEG = 6 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c[NCONN];
    Frame *f[NCONN][NSEG];
    g_autofree Frame **all = g_new(Frame *, NCONN * NSEG);
    unsigned i, j, n = 0;

    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    for (j = 0; j < NSEG; j++) {
        for (i = 0; i < NCONN; i++) {
            c[i]->tsval += j;
            f[i][j] = seg(t, c[i], 1000 + i * 7);
            all[n++] = f[i][j];
        }
    }
    for (i = 0; i < NCONN; i++) {
        expect_unit(t, f[i], NSEG);
    }
    send_hold_expire(t, all, n);
    assert_stat(t, "units-delivered", ==, NCONN);
    assert_stat(t, "flush-evict", ==, 0);
    rsc_end(t);
}

/*
 * With the flow table full (rsc_max_flows=4), a new connection flushes
 * the oldest unit.
 */
static void test_flows_evict_oldest(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    Frame *f[5][2];
    unsigned i;

    o.max_flows = 4;
    t = rsc_start(&o);
    for (i = 0; i < 5; i++) {
        Conn *c = conn_new(t, i == 2);

        segs(t, c, f[i], 2, MSS);
        send_frames(t, f[i], 2);
        if (i < 4) {
            clock_step(t, 1000);
        }
    }
    expect_unit(t, f[0], 2);
    check_now(t);
    assert_stat(t, "flush-evict", ==, 1);
    for (i = 1; i < 5; i++) {
        expect_unit(t, f[i], 2);
    }
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
    rsc_end(t);
}

/*
 * Memory is bounded by the flow table whatever the traffic: 960 new
 * connections with the default table (64 flows) evict the oldest units,
 * delivered at once and untouched; the newest 64 wait for the timer.
 */
static void test_flows_table_bounded(const void *data)
{
    enum { NCONN = 960, NFLOWS = 64 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autofree Frame **f = g_new(Frame *, NCONN);
    unsigned i;

    for (i = 0; i < NCONN; i++) {
        f[i] = seg(t, conn_new(t, false), MSS);
    }
    send_frames(t, f, NCONN);
    expect_frames(t, f, NCONN - NFLOWS);
    check_now(t);
    assert_stat(t, "flush-evict", ==, NCONN - NFLOWS);
    expect_frames(t, f + NCONN - NFLOWS, NFLOWS);
    clock_step(t, RSC_INTERVAL);
    check_expected(t);
    rsc_end(t);
}

/* An IPv4 and an IPv6 connection with the same ports are two flows. */
static void test_flows_ipv4_ipv6_same_ports(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *a = conn_new(t, false);
    Conn *b = conn_new(t, true);
    Frame *f[6], *fa[3], *fb[3];
    unsigned i;

    b->sport = a->sport;
    b->isn = a->isn;
    b->ack = a->ack;
    for (i = 0; i < 3; i++) {
        f[2 * i] = fa[i] = seg(t, a, MSS);
        f[2 * i + 1] = fb[i] = seg(t, b, MSS);
    }
    expect_unit(t, fa, 3);
    expect_unit(t, fb, 3);
    send_hold_expire(t, f, 6);
    rsc_end(t);
}

/*
 * Pop every used buffer that is ready (rx buffers not mergeable), hand
 * each packet to @fn and post the buffers again, in a few qtest round
 * trips per batch.  Returns the number of packets.
 */
static unsigned rx_drain_batch(RscTest *t,
                               void (*fn)(RscTest *t, const uint8_t *hdr,
                                          const uint8_t *frame, size_t len,
                                          void *opaque),
                               void *opaque)
{
    uint16_t size = t->rx->size;
    uint16_t n = used_idx(t, t->rx) - t->used_idx;
    g_autofree uint8_t *elems = g_malloc(8 * n + 1);
    g_autofree uint8_t *ids = g_malloc(2 * n + 1);
    g_autofree uint8_t *buf = g_malloc(t->buf_size);
    uint16_t i, k, slot;
    uint16_t le;

    g_assert(!t->opts.mergeable);
    for (i = 0; i < n; i += k) {
        slot = (t->used_idx + i) % size;
        k = MIN(n - i, size - slot);
        qtest_memread(t->qts, t->rx->used + 4 + 8 * slot, elems + 8 * i,
                      8 * k);
    }
    for (i = 0; i < n; i++) {
        uint32_t id = ldl_le_p(elems + 8 * i);
        uint32_t len = ldl_le_p(elems + 8 * i + 4);

        if (id >= size || len < VNET_HDR_LEN || len > t->buf_size) {
            rsc_fail("used element with id %u, length %u (ring size %u, "
                     "buffer size %u)", id, len, size, t->buf_size);
        }
        qtest_bufread(t->qts, rx_buf(t, id), buf, len);
        fn(t, buf, buf + VNET_HDR_LEN, len - VNET_HDR_LEN, opaque);
        stw_le_p(ids + 2 * i, id);
    }
    t->used_idx += n;
    for (i = 0; i < n; i += k) {
        slot = (t->avail_idx + i) % size;
        k = MIN(n - i, size - slot);
        qtest_memwrite(t->qts, t->rx->avail + 4 + 2 * slot, ids + 2 * i,
                       2 * k);
    }
    if (n) {
        t->avail_idx += n;
        le = cpu_to_le16(t->avail_idx);
        qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
        rx_kick(t);
    }
    return n;
}

/* A value of /proc/@pid/status, in kB. */
static uint64_t proc_status_kb(pid_t pid, const char *key)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int)pid);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    size_t klen = strlen(key);
    unsigned i;

    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        rsc_fail("cannot read %s", path);
    }
    lines = g_strsplit(text, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (!strncmp(lines[i], key, klen) && lines[i][klen] == ':') {
            return g_ascii_strtoull(lines[i] + klen + 1, NULL, 10);
        }
    }
    rsc_fail("no %s in %s", key, path);
}

enum {
    FLOOD_CONNS = 100000,
    FLOOD_PER_HOST = 50000,
    FLOOD_PLEN = 64,
};

/* The frames of a flood of connections, one segment each. */
typedef struct Flood {
    Conn *c;                /* retargeted at each connection in turn */
    uint8_t *bytes;         /* per connection: payload bytes received */
    unsigned received;      /* frames received */
} Flood;

/*
 * The segment of connection @i of the flood: @c takes its addresses,
 * ports, sequence numbers and payload.
 */
static Frame *flood_frame(RscTest *t, Conn *c, unsigned i)
{
    c->idx = i;
    c->v6 = i & 1;
    c->src_host = 0x100 + i / FLOOD_PER_HOST;
    c->sport = 10000 + i % FLOOD_PER_HOST;
    c->isn = i * 0x9e3779b1u;
    c->ack = i * 0x85ebca6bu;
    c->ip_id = i;
    c->tsval = i;
    return tcp_frame(t, c, 0, FLOOD_PLEN);
}

static void flood_check(RscTest *t, const uint8_t *hdr, const uint8_t *p,
                        size_t len, void *opaque)
{
    static const uint8_t zero[10];
    Flood *fl = opaque;
    bool v6 = len >= ETH_HLEN && lduw_be_p(p + 12) == ETH_P_IPV6;
    size_t l4 = ETH_HLEN + (v6 ? IP6_HLEN : IP4_HLEN);
    unsigned i;
    Frame *f;

    if (len < l4 + TCP_HLEN) {
        rsc_fail("flood: %zu-byte packet", len);
    }
    i = (lduw_be_p(p + ETH_HLEN + (v6 ? 22 : 14)) - 0x100) * FLOOD_PER_HOST +
        lduw_be_p(p + l4) - 10000;
    if (i >= FLOOD_CONNS || (i & 1) != v6) {
        g_autofree char *d = describe_frame(t, p, len);

        rsc_fail("flood: packet of no connection: %s", d);
    }
    f = flood_frame(t, fl->c, i);
    if (memcmp(hdr, zero, sizeof(zero))) {
        hexdump("vnet header", hdr, VNET_HDR_LEN);
        rsc_fail("flood: connection %u: the segment must come untouched, "
                 "with a zero vnet header", i);
    }
    if (len != f->len || memcmp(p, f->data, len)) {
        hexdump("expected", f->data, f->len);
        hexdump("got", p, len);
        rsc_fail("flood: connection %u: got %zu bytes that differ from the "
                 "%zu-byte segment sent", i, len, f->len);
    }
    if (fl->bytes[i]) {
        rsc_fail("flood: connection %u: its segment came twice", i);
    }
    fl->bytes[i] += f->plen;
    fl->received++;
}

/* Receive until @n frames of the flood have come. */
static void flood_receive(RscTest *t, Flood *fl, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (fl->received < n) {
        if (!rx_drain_batch(t, flood_check, fl) &&
            g_get_monotonic_time() > deadline) {
            rsc_fail("flood: %u of %u segments received", fl->received, n);
        }
    }
    /* frames built to check what came */
    g_ptr_array_set_size(t->frames, 0);
}

/*
 * Memory held for coalescing is bounded whatever the traffic: 100000
 * connections, one segment each, with rsc_interval so long that units
 * are only delivered when evicted from the default-sized flow table.
 * Every byte of every connection arrives once, untouched, and QEMU's
 * VmData and VmRSS grow by less than 1 MiB between the first 5000
 * connections and the end.
 */
static void test_flows_memory_bounded(const void *data)
{
    enum { NFLOWS = 64, BATCH = 256, WARMUP = 5000 };
    RscOpts o = timer_opts(data);
    g_autofree uint8_t *bytes = g_new0(uint8_t, FLOOD_CONNS);
    Flood fl = { .bytes = bytes };
    uint64_t data0 = 0, rss0 = 0, data1, rss1;
    Frame *f[BATCH];
    RscTest *t;
    pid_t pid;
    unsigned i, n, sent = 0;

    o.interval = UINT32_MAX;
    o.buf_size = 512;
    t = rsc_start(&o);
    pid = qtest_pid(t->qts);
    g_assert_cmpint(pid, >, 0);
    fl.c = conn_new(t, false);
    while (sent < FLOOD_CONNS) {
        n = MIN(BATCH, FLOOD_CONNS - sent);
        for (i = 0; i < n; i++) {
            f[i] = flood_frame(t, fl.c, sent + i);
        }
        send_frames(t, f, n);
        sent += n;
        flood_receive(t, &fl, sent > NFLOWS ? sent - NFLOWS : 0);
        if (!data0 && sent >= WARMUP) {
            data0 = proc_status_kb(pid, "VmData");
            rss0 = proc_status_kb(pid, "VmRSS");
        }
    }
    assert_idle(t, "the newest units are held");
    clock_step(t, UINT32_MAX);
    flood_receive(t, &fl, FLOOD_CONNS);
    assert_idle(t, "every segment was received");
    data1 = proc_status_kb(pid, "VmData");
    rss1 = proc_status_kb(pid, "VmRSS");
    g_test_message("QEMU memory after %u connections: VmData %" PRIu64
                   " kB, VmRSS %" PRIu64 " kB; after %u: VmData %" PRIu64
                   " kB, VmRSS %" PRIu64 " kB", WARMUP, data0, rss0,
                   FLOOD_CONNS, data1, rss1);
    for (i = 0; i < FLOOD_CONNS; i++) {
        if (bytes[i] != FLOOD_PLEN) {
            rsc_fail("flood: connection %u: %u of %u payload bytes "
                     "received", i, bytes[i], FLOOD_PLEN);
        }
    }
    if (getenv("RSC_TEST_SANITIZED")) {
        /* ASan keeps freed memory in quarantine: growth means nothing */
        g_test_message("QEMU is built with sanitizers: memory growth not "
                       "checked");
    } else if (data1 > data0 + 1024 || rss1 > rss0 + 1024) {
        rsc_fail("QEMU grew by more than 1 MiB over %u connections: VmData "
                 "%" PRIu64 " -> %" PRIu64 " kB, VmRSS %" PRIu64 " -> %"
                 PRIu64 " kB", FLOOD_CONNS - WARMUP, data0, data1, rss0,
                 rss1);
    }
    assert_stat(t, "flush-evict", ==, FLOOD_CONNS - NFLOWS);
    assert_stat(t, "flush-timer", ==, NFLOWS);
    rsc_end(t);
}

/* --- ctrl: CTRL_GUEST_OFFLOADS_SET ------------------------------------ */

/* Bit 61 is accepted in CTRL_GUEST_OFFLOADS_SET when RSC_EXT is on. */
static void test_ctrl_rsc_ext_accepted(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[3];

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
    rsc_end(t);
}

/*
 * Without RSC_EXT negotiated, bit 61 is refused (VIRTIO_NET_ERR) and RSC
 * stays off.
 */
static void test_ctrl_rsc_ext_not_negotiated(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    Conn *c;
    Frame *f[3];

    o.no_rsc_ext = true;
    t = rsc_start(&o);
    c = conn_new(t, false);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_ERR);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    rsc_end(t);
}

/*
 * Clearing TSO4/TSO6 (bit 61 still set) turns RSC off and flushes the
 * held units of every connection, next to a unit already delivered and
 * not yet read; segments then come untouched, in order.  Setting TSO4/TSO6
 * again turns RSC on, and the same connections build units again.
 */
static void test_ctrl_offloads_toggle(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c[4];
    Frame *g[6];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_OK);
    check_now(t);
    assert_stat(t, "flush-offloads", ==, 3);

    for (i = 0; i < 6; i++) {
        g[i] = seg(t, c[i % 4], MSS);
    }
    expect_frames(t, g, 6);
    send_frames(t, g, 6);
    check_now(t);

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, 4);
    expire_and_check(t);
    /* the six frames sent while RSC was off did not go through it */
    assert_stat(t, "segments-received", ==, t->nsent - 6);
    rsc_end(t);
}

/* TSO4 off, TSO6 on: IPv4 passes untouched, IPv6 is still merged. */
static void test_ctrl_tso4_off(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3], *g[3];

    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_GUEST_TSO4)),
                     ==, VIRTIO_NET_OK);
    segs(t, c, f, 3, MSS);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-disabled", ==, 3);
    segs(t, c6, g, 3, MSS);
    expect_unit(t, g, 3);
    send_hold_expire(t, g, 3);
    rsc_end(t);
}

/*
 * A command with an offload that was not negotiated is refused before
 * anything changes: RSC stays on and the held unit keeps growing.
 */
static void test_ctrl_invalid_no_change(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f[5];

    segs(t, c, f, 3, MSS);
    send_frames(t, f, 3);
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_GUEST_UFO) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)),
                     ==, VIRTIO_NET_ERR);
    assert_idle(t, "a refused command changes nothing");
    segs(t, c, f + 3, 2, MSS);
    expect_unit(t, f, 5);
    send_frames(t, f + 3, 2);
    expire_and_check(t);
    assert_stat(t, "flush-offloads", ==, 0);
    rsc_end(t);
}

/* --- flush: VM stop, link down, reset ----------------------------------- */

/*
 * Stopping the VM flushes held units (nothing pending for migration),
 * next to a unit already delivered and not yet read.  Frames the backend
 * offers while the VM is stopped wait and, after cont, are coalesced with
 * the traffic that follows.  Every byte arrives once, in order.
 */
static void test_flush_vm_stop(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c[4];
    Frame *f[5], *g[3];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'stop' }");
    check_now(t);
    assert_stat(t, "flush-vm-stop", ==, 3);

    segs(t, c[0], f, 3, MSS);
    send_frames(t, f, 3);
    assert_idle(t, "the VM is stopped");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'cont' }");
    assert_idle(t, "frames offered while stopped start a unit at cont");
    segs(t, c[0], f + 3, 2, MSS);
    segs(t, c[1], g, 3, MSS);
    send_frames(t, f + 3, 2);
    send_frames(t, g, 3);
    expect_unit(t, f, 5);
    expect_unit(t, g, 3);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, t->nsent);
    rsc_end(t);
}

static void set_link(RscTest *t, bool up)
{
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'set_link', 'arguments':"
                             " { 'name': 'net0', 'up': %i } }", up);
}

/*
 * Link down flushes held units, next to a unit already delivered and not
 * yet read.  Frames offered while the link is down are dropped before
 * the device, as without RSC: none of them shows up later.  After link
 * up the same connections build units again.
 */
static void test_flush_link_down(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c[4];
    Frame *f[3];
    unsigned i, accepted;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, !(i & 1));
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    set_link(t, false);
    check_now(t);
    assert_stat(t, "flush-link-down", ==, 3);

    accepted = t->nsent;
    segs(t, c[0], f, 3, MSS);
    send_frames(t, f, 3);
    assert_idle(t, "frames offered while the link is down are dropped");
    set_link(t, true);
    assert_idle(t, "nothing offered while the link was down comes later");
    hold_units(t, c, 4);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, accepted + 12);
    rsc_end(t);
}

/*
 * A device reset delivers held units to the ring before the queues are
 * reset (accepted data is never freed), next to a unit already delivered
 * and not yet read; after the driver has set the device up again, the
 * same connections build units again.
 */
static void test_flush_reset(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c[4];
    unsigned i;

    for (i = 0; i < 4; i++) {
        c[i] = conn_new(t, i & 1);
    }
    hold_units(t, c, 3);
    deliver_unread(t, c[3]);
    qvirtio_reset(t->vdev);
    t->repost = false;
    check_now(t);
    assert_stat(t, "flush-reset", ==, 3);
    t->repost = true;
    rsc_driver_init(t);
    g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, 4);
    expire_and_check(t);
    assert_stat(t, "segments-received", ==, t->nsent);
    rsc_end(t);
}

/* --- lifecycle: nothing lost across flushes, stops and migration -------- */

/*
 * Traffic whose unit boundaries the test does not fix: the data frames
 * sent on each connection, in order, checked with check_stream_packet().
 */
typedef struct RscStream {
    unsigned nconn;         /* connections of the test when created */
    GPtrArray **frames;     /* per connection: Frame *, in sequence */
    unsigned *next;         /* per connection: frames received */
    GPtrArray *sent;        /* Frame *, in the order they were sent */
} RscStream;

/* A stream over the connections @t has now. */
static RscStream *stream_new(RscTest *t)
{
    RscStream *s = g_new0(RscStream, 1);
    unsigned i;

    s->nconn = t->conns->len;
    s->frames = g_new(GPtrArray *, s->nconn);
    s->next = g_new0(unsigned, s->nconn);
    s->sent = g_ptr_array_new();
    for (i = 0; i < s->nconn; i++) {
        s->frames[i] = g_ptr_array_new();
    }
    return s;
}

static void stream_free(RscStream *s)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        g_ptr_array_unref(s->frames[i]);
    }
    g_ptr_array_unref(s->sent);
    g_free(s->frames);
    g_free(s->next);
    g_free(s);
}

/* Send @f[0..n-1] in one burst, as traffic of @s. */
static void stream_send(RscTest *t, RscStream *s, Frame **f, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        g_assert(f[i]->conn >= 0 && f[i]->conn < s->nconn);
        g_ptr_array_add(s->frames[f[i]->conn], f[i]);
        g_ptr_array_add(s->sent, f[i]);
    }
    send_frames(t, f, n);
}

/*
 * Forget the frames of @s from the @accepted-th sent on: the backend
 * never handed them to the device.
 */
static void stream_truncate(RscStream *s, unsigned accepted)
{
    unsigned i;

    g_assert_cmpuint(accepted, <=, s->sent->len);
    for (i = s->sent->len; i > accepted; i--) {
        Frame *f = g_ptr_array_index(s->sent, i - 1);
        GPtrArray *cf = s->frames[f->conn];

        g_assert(g_ptr_array_index(cf, cf->len - 1) == f);
        g_ptr_array_set_size(cf, cf->len - 1);
    }
    g_ptr_array_set_size(s->sent, accepted);
}

/* Check every packet that is ready now; returns how many there were. */
static unsigned stream_poll(RscTest *t, RscStream *s)
{
    unsigned n = 0;

    while (rx_ready(t)) {
        RxPacket p;

        rx_pop(t, &p);
        check_stream_packet(t, &p, s->frames, s->next);
        rx_packet_free(&p);
        n++;
    }
    return n;
}

static bool stream_complete(RscStream *s)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        if (s->next[i] != s->frames[i]->len) {
            return false;
        }
    }
    return true;
}

/* Has QEMU read every frame given to the backend? */
static bool backend_drained(RscTest *t)
{
    int outq;

    if (t->pkt >= 0) {
        return tap_frames_read(t) >= t->nsent;
    }
    g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
    return outq == 0;
}

static G_NORETURN void stream_stuck(RscTest *t, RscStream *s,
                                    const char *what)
{
    unsigned i;

    for (i = 0; i < s->nconn; i++) {
        g_test_message("conn %u: %u of %u frames received", i, s->next[i],
                       s->frames[i]->len);
    }
    rsc_fail("%s", what);
}

/*
 * Receive (and give the buffers back) until QEMU has read everything the
 * backend was given, so that the next burst cannot block the sender.
 */
static void stream_settle(RscTest *t, RscStream *s)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (!backend_drained(t)) {
        stream_poll(t, s);
        if (g_get_monotonic_time() > deadline) {
            stream_stuck(t, s, "QEMU stopped reading the backend");
        }
    }
}

/*
 * Receive until every frame of @s has arrived, stepping the clock by
 * @step_ns whenever nothing is ready (0: never); then nothing else may
 * come.
 */
static void stream_finish(RscTest *t, RscStream *s, int64_t step_ns)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

    while (!stream_complete(s)) {
        if (!stream_poll(t, s) && step_ns) {
            qtest_clock_step(t->qts, step_ns);
        }
        if (g_get_monotonic_time() > deadline) {
            stream_stuck(t, s, "frames lost or stuck");
        }
    }
    assert_idle(t, "every frame sent was received");
}

/*
 * A flush racing new segments: the clock step that fires the timer (or,
 * with rsc_interval=0, the end of a receive burst) comes while QEMU is
 * still reading a burst, and only 16 buffers are posted, so a segment
 * may join a unit, start the next one, or wait for a buffer.  Every byte
 * arrives exactly once and in order, whichever happens.
 */
static void lifecycle_race(const void *data, uint32_t interval)
{
    enum { NCONN = 8, ROUNDS = 150, MAX_BURST = 48 };
    RscOpts o = timer_opts(data);
    g_autoptr(GRand) rnd = g_rand_new_with_seed(0x52534321);
    Conn *c[NCONN];
    RscStream *s;
    RscTest *t;
    unsigned i, r;

    o.interval = interval;
    o.nbufs = 16;
    t = rsc_start(&o);
    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    s = stream_new(t);
    for (r = 0; r < ROUNDS; r++) {
        Frame *f[MAX_BURST];
        unsigned n = g_rand_int_range(rnd, 1, MAX_BURST + 1);

        for (i = 0; i < n; i++) {
            Conn *x = c[g_rand_int_range(rnd, 0, NCONN)];
            uint32_t plen = g_rand_int_range(rnd, 0, 4) ?
                            MSS : g_rand_int_range(rnd, 1, MSS + 1);

            f[i] = seg(t, x, plen);
        }
        stream_settle(t, s);
        stream_send(t, s, f, n);
        qtest_clock_step(t->qts, g_rand_int_range(rnd, 1, 2 * RSC_INTERVAL));
        stream_poll(t, s);
    }
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "segments-received", ==, t->nsent);
    assert_stat(t, "segments-merged", >, 0);
    g_test_message("%u frames: %" PRIu64 " units, %" PRIu64 " flushed by "
                   "the timer, %" PRIu64 " at burst end, %" PRIu64 " not "
                   "accepted at first", t->nsent,
                   rsc_stat(t, "units-delivered"), rsc_stat(t, "flush-timer"),
                   rsc_stat(t, "flush-burst-end"),
                   rsc_stat(t, "not-accepted"));
    stream_free(s);
    rsc_end(t);
}

static void test_lifecycle_timer_race(const void *data)
{
    lifecycle_race(data, RSC_INTERVAL);
}

static void test_lifecycle_burst_race(const void *data)
{
    lifecycle_race(data, 0);
}

/* A migration from the QEMU of a test to a new one. */
typedef struct RscMigration {
    QTestState *dst;        /* the destination */
    int sock;               /* our end of the destination's socketpair */
    char *dir;              /* holds the migration socket */
    char *uri;              /* of the migration socket */
} RscMigration;

/*
 * Start a QEMU with the same machine and devices as @t and a new
 * socketpair backend, and migrate @t's VM to it.  Returns while the
 * migration runs: what the source's backend is given from now on may or
 * may not reach the device before the VM stops.
 */
static void rsc_migrate_start(RscTest *t, RscMigration *m)
{
    g_autoptr(GString) args = g_string_new(NULL);
    int sv[2];

    g_assert(!t->opts.tap);
    m->dir = g_dir_make_tmp("virtio-net-rsc-XXXXXX", NULL);
    g_assert_nonnull(m->dir);
    m->uri = g_strdup_printf("unix:%s/migration", m->dir);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    m->sock = sv[0];
    g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    rsc_machine_args(args, &t->opts);
    g_string_append(args, " -incoming defer");
    m->dst = qtest_init(args->str);
    close(sv[1]);

    qtest_qmp_assert_success(m->dst, "{ 'execute': 'migrate-incoming',"
                             " 'arguments': { 'uri': %s } }", m->uri);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate-set-capabilities',"
                             " 'arguments': { 'capabilities': [ {"
                             " 'capability': 'events', 'state': true } ] } }");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate',"
                             " 'arguments': { 'uri': %s } }", m->uri);
}

/*
 * Wait until the migration has completed and the destination runs; from
 * then on @t drives the destination.  Returns the source's rsc-stats as
 * they were at the end.
 */
static QDict *rsc_migrate_finish(RscTest *t, RscMigration *m)
{
    g_autofree char *path = g_strdup_printf("%s/migration", m->dir);
    QDict *stats;

    for (;;) {
        QDict *ev = qtest_qmp_eventwait_ref(t->qts, "MIGRATION");
        const char *status = qdict_get_str(qdict_get_qdict(ev, "data"),
                                           "status");

        if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
            rsc_fail("migration %s", status);
        }
        if (!strcmp(status, "completed")) {
            qobject_unref(ev);
            break;
        }
        qobject_unref(ev);
    }
    qtest_qmp_eventwait(m->dst, "RESUME");
    stats = rsc_stats(t);

    qtest_quit(t->qts);
    close(t->sock);
    t->qts = m->dst;
    t->bus->qts = m->dst;
    t->sock = m->sock;
    t->nsent = 0;
    unlink(path);
    rmdir(m->dir);
    g_free(m->dir);
    g_free(m->uri);
    return stats;
}

/*
 * Live migration with units held.  The source flushes them when the VM
 * stops, before the last RAM pass, so the guest finds every accepted byte
 * exactly once: read on the source, or in the ring it reads on the
 * destination.  Frames sent while the migration runs were accepted by the
 * source (counted in its segments-received, in the order sent) and reach
 * the guest, or never reached the device.  RSC goes on at the destination.
 */
static void test_lifecycle_migration(const void *data)
{
    enum { NCONN = 6, BURSTS = 12 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(QDict) src = NULL;
    RscMigration m;
    RscStream *s;
    Conn *c[NCONN];
    Frame *f[3 * NCONN];
    unsigned i, j, before;

    for (i = 0; i < NCONN; i++) {
        c[i] = conn_new(t, i & 1);
    }
    s = stream_new(t);

    /* units delivered and read on the source */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "units-delivered", ==, NCONN);

    /* units held, and one delivered but not read */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    assert_idle(t, "the units are held");
    segs(t, c[0], f, 2, MSS);
    f[2] = seg(t, c[0], 700);
    stream_send(t, s, f, 3);
    backend_sync(t);
    before = s->sent->len;

    /* segments that arrive while the migration runs */
    rsc_migrate_start(t, &m);
    for (j = 0; j < BURSTS; j++) {
        for (i = 0; i < NCONN; i++) {
            f[i] = seg(t, c[i], MSS);
        }
        stream_send(t, s, f, NCONN);
    }
    src = rsc_migrate_finish(t, &m);
    g_test_message("the source accepted %" PRIu64 " of %u frames, %u of "
                   "them while the migration ran",
                   stats_get(src, "segments-received"), s->sent->len,
                   (unsigned)stats_get(src, "segments-received") - before);
    if (stats_get(src, "segments-received") < before) {
        rsc_fail("the source accepted %" PRIu64 " frames, %u were read "
                 "before the migration started",
                 stats_get(src, "segments-received"), before);
    }
    if (stats_get(src, "flush-vm-stop") < 1) {
        rsc_fail("the source held units when it stopped, flush-vm-stop "
                 "is 0");
    }
    stream_truncate(s, stats_get(src, "segments-received"));

    /* everything accepted is in the ring, without a clock step */
    stream_finish(t, s, 0);

    /* the destination coalesces */
    for (i = 0; i < 3 * NCONN; i++) {
        f[i] = seg(t, c[i % NCONN], MSS);
    }
    stream_send(t, s, f, 3 * NCONN);
    assert_idle(t, "the destination holds units");
    stream_finish(t, s, RSC_INTERVAL);
    assert_stat(t, "segments-received", ==, 3 * NCONN);
    assert_stat(t, "units-delivered", ==, NCONN);
    stream_free(s);
    rsc_end(t);
}

/* --- lossless: nothing lost when the guest is short of buffers -------- */

/*
 * @nconn connections send @nseg segments each while only @nbufs buffers
 * are posted; the test consumes packets (stepping the clock when none is
 * ready) and checks that every byte arrives exactly once and in order.
 */
static void lossless(const void *data, unsigned nbufs, unsigned nconn,
                     unsigned nseg)
{
    RscOpts o = timer_opts(data);
    RscTest *t;
    g_autofree GPtrArray **cf = g_new0(GPtrArray *, nconn);
    g_autofree unsigned *next = g_new0(unsigned, nconn);
    g_autofree Frame **all = g_new(Frame *, nconn * nseg);
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    unsigned i, j, n = 0, done = 0;

    o.nbufs = nbufs;
    t = rsc_start(&o);
    for (i = 0; i < nconn; i++) {
        conn_new(t, i & 1);
        cf[i] = g_ptr_array_new();
    }
    for (j = 0; j < nseg; j++) {
        for (i = 0; i < nconn; i++) {
            Frame *f = seg(t, g_ptr_array_index(t->conns, i), MSS);

            g_ptr_array_add(cf[i], f);
            all[n++] = f;
        }
    }
    send_frames(t, all, n);
    while (done < nconn) {
        if (rx_ready(t)) {
            RxPacket p;

            rx_pop(t, &p);
            check_stream_packet(t, &p, cf, next);
            rx_packet_free(&p);
            done = 0;
            for (i = 0; i < nconn; i++) {
                done += next[i] == nseg;
            }
            continue;
        }
        if (g_get_monotonic_time() > deadline) {
            for (i = 0; i < nconn; i++) {
                g_test_message("conn %u: %u of %u segments delivered", i,
                               next[i], nseg);
            }
            rsc_fail("segments lost or stuck with %u guest buffers", nbufs);
        }
        qtest_clock_step(t->qts, RSC_INTERVAL);
    }
    assert_idle(t, "every segment was delivered");
    for (i = 0; i < nconn; i++) {
        g_ptr_array_unref(cf[i]);
    }
    rsc_end(t);
}

static void test_lossless_ring_pressure(const void *data)
{
    lossless(data, 8, 4, 12);
}

static void test_lossless_ring_exhausted(const void *data)
{
    lossless(data, 2, 3, 4);
}

/* --- stats ------------------------------------------------------------- */

/* rsc-stats has every documented counter, as uint64. */
static void test_stats_counters(const void *data)
{
    static const char *const names[] = {
        "segments-received", "segments-merged", "units-delivered",
        "frames-uncoalesced", "window-updates", "not-accepted",
        "bypass-not-tcpip", "bypass-disabled", "bypass-malformed",
        "bypass-fragment", "bypass-ip-options", "bypass-checksum",
        "bypass-tcp-flags", "bypass-tcp-options", "bypass-pure-ack",
        "bypass-dup-ack", "bypass-backend-gso", "bypass-no-unit",
        "flush-timer", "flush-burst-end", "flush-full", "flush-short",
        "flush-exception", "flush-evict", "flush-no-buffer",
        "flush-offloads", "flush-reset", "flush-vm-stop",
        "flush-link-down",
    };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    g_autoptr(QDict) s = NULL;
    Frame *f[3];
    unsigned i;

    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    send_hold_expire(t, f, 3);
    s = rsc_stats(t);
    for (i = 0; i < ARRAY_SIZE(names); i++) {
        stats_get(s, names[i]);
    }
    g_assert_cmpuint(stats_get(s, "segments-received"), ==, 3);
    g_assert_cmpuint(stats_get(s, "units-delivered"), ==, 1);
    g_assert_cmpuint(stats_get(s, "flush-timer"), ==, 1);
    g_assert_cmpuint(stats_get(s, "frames-uncoalesced"), ==, 0);
    rsc_end(t);
}


/* --- tap: backend vnet header flags and GSO ------------------------------ */

static bool frame_is_v6(const Frame *f)
{
    return lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6;
}

/*
 * Give @f a partial TCP checksum (the pseudo header sum, as the host
 * stack leaves it) and the NEEDS_CSUM header the kernel passes on.
 */
static void frame_needs_csum(Frame *f)
{
    uint32_t tcp_len = f->hdr_len - f->l4 + f->plen;

    stw_be_p(f->data + f->l4 + 16,
             csum_fold(pseudo_sum(f->data + f->l3, frame_is_v6(f),
                                  tcp_len)));
    f->tx_vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    stw_le_p(f->tx_vhdr + 6, f->l4);
    stw_le_p(f->tx_vhdr + 8, 16);
    memcpy(f->rx_vhdr, f->tx_vhdr, sizeof(f->rx_vhdr));
}

/*
 * Make @f a GSO packet of the backend: delivered untouched, never merged,
 * with RSC_INFO and its segment count.
 */
static void frame_gso(Frame *f, uint16_t gso_size)
{
    uint8_t type = frame_is_v6(f) ? VIRTIO_NET_HDR_GSO_TCPV6
                                  : VIRTIO_NET_HDR_GSO_TCPV4;

    frame_needs_csum(f);
    f->tx_vhdr[1] = type;
    stw_le_p(f->tx_vhdr + 2, f->hdr_len);
    stw_le_p(f->tx_vhdr + 4, gso_size);
    f->rx_vhdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_RSC_INFO;
    f->rx_vhdr[1] = type;
    stw_le_p(f->rx_vhdr + 4, gso_size);
    stw_le_p(f->rx_vhdr + 6, DIV_ROUND_UP(f->plen, gso_size));
    stw_le_p(f->rx_vhdr + 8, 0);
    f->any_hdr_len = true;
}

/*
 * Frames marked NEEDS_CSUM by the backend need no checksum check: they
 * merge although their checksum field only holds the pseudo header sum.
 */
static void test_tap_needs_csum_merge(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[8];
    unsigned i;

    segs(t, c, f, 4, MSS);
    segs(t, c6, f + 4, 4, 1400);
    for (i = 0; i < 8; i++) {
        frame_needs_csum(f[i]);
    }
    expect_unit(t, f, 4);
    expect_unit(t, f + 4, 4);
    send_hold_expire(t, f, 8);
    assert_stat(t, "bypass-checksum", ==, 0);
    rsc_end(t);
}

/*
 * A NEEDS_CSUM frame held alone goes out untouched, with the backend's
 * vnet header (flags, csum_start, csum_offset).
 */
static void test_tap_needs_csum_single(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[2];

    f[0] = seg(t, c, MSS);
    f[1] = seg(t, c6, 1000);
    frame_needs_csum(f[0]);
    frame_needs_csum(f[1]);
    expect_frames(t, f, 2);
    send_hold_expire(t, f, 2);
    rsc_end(t);
}

/*
 * A GSO packet from the backend is never merged; with RSC_EXT it carries
 * RSC_INFO and csum_start = ceil(payload / gso_size).
 */
static void test_tap_gso_passthrough(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[3];

    f[0] = seg(t, c, 3500);
    frame_gso(f[0], 1000);
    f[1] = seg(t, c, 3500);
    frame_gso(f[1], 1000);
    f[2] = seg(t, c6, 5000);
    frame_gso(f[2], 1448);
    expect_frames(t, f, 3);
    send_frames(t, f, 3);
    check_now(t);
    assert_stat(t, "bypass-backend-gso", ==, 3);
    rsc_end(t);
}

/* A GSO packet of a connection with a unit held comes after the unit. */
static void test_tap_gso_after_unit(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, true);
    Frame *f[3], *x;

    segs(t, c, f, 3, MSS);
    x = seg(t, c, 4 * MSS);
    frame_gso(x, MSS);
    flush_then_alone(t, f, x);
    rsc_end(t);
}

/*
 * Send @f through the NAPI tap and the bridge: the kernel validates its
 * checksum (GRO) and QEMU gets it with DATA_VALID.  PSH keeps GRO from
 * merging segments itself.
 */
static void frame_via_gro(Frame *f)
{
    g_assert_cmpint(f->data[f->l4 + 13] & TCP_PSH, !=, 0);
    f->via_gro = true;
    f->rx_vhdr[0] = VIRTIO_NET_HDR_F_DATA_VALID;
}

/* Frames marked DATA_VALID by the backend merge. */
static void test_tap_data_valid_merge(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Conn *c6 = conn_new(t, true);
    Frame *f[8];
    unsigned i;

    c->flags = c6->flags = TCP_ACK | TCP_PSH;
    segs(t, c, f, 4, MSS);
    segs(t, c6, f + 4, 4, 1400);
    for (i = 0; i < 8; i++) {
        frame_via_gro(f[i]);
    }
    expect_unit(t, f, 4);
    expect_unit(t, f + 4, 4);
    send_hold_expire(t, f, 8);
    rsc_end(t);
}

/*
 * A DATA_VALID frame held alone goes out untouched, with the backend's
 * vnet header flags.
 */
static void test_tap_data_valid_single(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    Conn *c = conn_new(t, false);
    Frame *f;

    c->flags = TCP_ACK | TCP_PSH;
    f = seg(t, c, MSS);
    frame_via_gro(f);
    expect_frame(t, f);
    send_hold_expire(t, &f, 1);
    rsc_end(t);
}

/* --- hostile: no input from the backend hurts QEMU or other traffic ----- */

/*
 * A connection with an address pair of its own: frames that flush every
 * unit of their address pair leave other connections' units alone.
 */
static Conn *victim_new(RscTest *t, bool v6)
{
    Conn *c = conn_new(t, v6);

    c->src_host = 0x200 + c->idx;
    return c;
}

/*
 * Send @bad[0..n-1] in one burst with the four segments of a well-formed
 * connection spread between them.  The caller has declared what the
 * guest gets of @bad, marking with expect_later() what waits for the
 * timer.  Check that, then that the bystander connection makes one unit
 * at the timer: QEMU is alive and good traffic was not disturbed.
 */
static void hostile_burst(RscTest *t, Frame **bad, unsigned n)
{
    Conn *good = victim_new(t, false);
    g_autofree Frame **all = g_new(Frame *, n + 4);
    Frame *g[4];
    unsigned i, j = 0, k = 0;

    segs(t, good, g, 4, MSS);
    for (i = 0; i < n; i++) {
        while (k < 3 && i == k * n / 3) {
            all[j++] = g[k++];
        }
        all[j++] = bad[i];
    }
    while (k < 4) {
        all[j++] = g[k++];
    }
    send_frames(t, all, j);
    check_now(t);
    expect_unit(t, g, 4);
    expire_and_check(t);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'query-status' }");
}

/* Add @f to @bad, to be delivered at once and untouched. */
static void bad_now(RscTest *t, GPtrArray *bad, Frame *f)
{
    expect_frame(t, f);
    g_ptr_array_add(bad, f);
}

static void hostile_burst_array(RscTest *t, GPtrArray *bad)
{
    hostile_burst(t, (Frame **)bad->pdata, bad->len);
    g_ptr_array_set_size(bad, 0);
}

enum {
    OPTS_NOPS,          /* NOPs, EOL padding */
    OPTS_UNKNOWN,       /* one option of an unknown kind */
    OPTS_TS,            /* NOPs, then the timestamp option */
    OPTS_TS_LENGTH,     /* the timestamp kind with a wrong length */
    OPTS_LENGTH_0,      /* NOPs, then the timestamp kind with length 0 */
    OPTS_LENGTH_1,      /* NOPs, then the timestamp kind with length 1 */
    OPTS_TS_OVERRUN,    /* a timestamp option running past the options */
    OPTS_TS_TWICE,      /* two timestamp options */
    OPTS_EOL_GARBAGE,   /* EOL, then bytes that are not zero */
    OPTS__MAX,
};

/*
 * Fill @o with @n bytes of TCP options of @kind, padded with EOL to a
 * multiple of 4 bytes (*@len).  Returns 1 if segments with these options
 * may be merged (only NOPs, EOL padding and at most one timestamp option,
 * in 12 bytes at most), 0 if not, -1 if @kind has no case of @n bytes.
 */
static int tcp_opts_case(unsigned kind, unsigned n, uint8_t *o, size_t *len)
{
    memset(o, 0, 40);
    *len = ROUND_UP(n, 4);
    switch (kind) {
    case OPTS_NOPS:
        memset(o, 1, n);
        return *len <= 12;
    case OPTS_UNKNOWN:
        if (n == 0) {
            return -1;
        }
        o[0] = 253;
        if (n >= 2) {
            o[1] = n;
            memset(o + 2, 0xa5, n - 2);
        }
        return 0;
    case OPTS_TS:
        if (n < 10) {
            return -1;
        }
        memset(o, 1, n - 10);
        o[n - 10] = 8;
        o[n - 9] = 10;
        return *len <= 12;
    case OPTS_TS_LENGTH:
        if (n == 0 || n == 10) {
            return -1;
        }
        o[0] = 8;
        o[1] = n >= 2 ? n : 0;
        return 0;
    case OPTS_LENGTH_0:
    case OPTS_LENGTH_1:
        if (n < 2) {
            return -1;
        }
        memset(o, 1, n - 2);
        o[n - 2] = 8;
        o[n - 1] = kind == OPTS_LENGTH_1;
        return 0;
    case OPTS_TS_OVERRUN:
        if (n < 2) {
            return -1;
        }
        memset(o, 1, n - 2);
        o[n - 2] = 8;
        o[n - 1] = 10;
        return 0;
    case OPTS_TS_TWICE:
        if (n < 20) {
            return -1;
        }
        memset(o, 1, n - 20);
        o[n - 20] = 8;
        o[n - 19] = 10;
        o[n - 10] = 8;
        o[n - 9] = 10;
        return 0;
    case OPTS_EOL_GARBAGE:
        if (n < 2) {
            return -1;
        }
        memset(o + 1, 0xa5, n - 1);
        return 0;
    }
    g_assert_not_reached();
}

/*
 * TCP options of every length from 0 to 40 bytes, well and badly encoded.
 * Two segments of each case make one unit at the timer if their options
 * may be merged; otherwise each comes at once, untouched.
 */
static void test_hostile_tcp_options(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    unsigned kind, n, merged = 0, alone = 0;

    for (kind = 0; kind < OPTS__MAX; kind++) {
        for (n = 0; n <= 40; n++) {
            uint8_t opts[40];
            size_t len;
            int merge = tcp_opts_case(kind, n, opts, &len);
            Conn *c;
            Frame *f[2];

            if (merge < 0) {
                continue;
            }
            c = victim_new(t, n & 1);
            conn_set_opts(c, opts, len);
            f[0] = seg(t, c, 100);
            c->tsval++;
            f[1] = seg(t, c, 100);
            if (merge) {
                expect_unit(t, f, 2);
                expect_later(t);
                merged++;
            } else {
                expect_frames(t, f, 2);
                alone += 2;
            }
            g_ptr_array_add(bad, f[0]);
            g_ptr_array_add(bad, f[1]);
        }
        hostile_burst_array(t, bad);
    }
    g_test_message("%u cases merged, %u frames alone", merged, alone);
    assert_stat(t, "bypass-tcp-options", ==, alone);
    rsc_end(t);
}

/*
 * Make @f declare only @plen of its payload bytes in the IP header
 * (checksums fixed): the bytes after them become a trailer.
 */
static void frame_declare_payload(Frame *f, uint32_t plen)
{
    bool v6 = lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6;
    uint8_t *ip = f->data + f->l3, *tcp = f->data + f->l4;
    uint32_t tcp_len = f->hdr_len - f->l4 + plen;

    g_assert_cmpuint(plen, <=, f->plen);
    if (v6) {
        stw_be_p(ip + 4, tcp_len);
    } else {
        stw_be_p(ip + 2, f->l4 - f->l3 + tcp_len);
        ip4_fix_csum(f);
    }
    stw_be_p(tcp + 16, 0);
    stw_be_p(tcp + 16, ~csum_fold(csum_add(pseudo_sum(ip, v6, tcp_len), tcp,
                                           tcp_len)) & 0xffff);
    f->plen = plen;
}

/* Recompute the checksums of @f after a change of its headers. */
static void frame_fix_csums(Frame *f)
{
    frame_declare_payload(f, f->plen);
}

/* Set the IPv4 total length or IPv6 payload length field of @f. */
static void frame_set_ip_length(Frame *f, uint16_t len)
{
    if (lduw_be_p(f->data + f->l3 - 2) == ETH_P_IPV6) {
        stw_be_p(f->data + f->l3 + 4, len);
    } else {
        stw_be_p(f->data + f->l3 + 2, len);
        ip4_fix_csum(f);
    }
}

static void hostile_ip_length(RscTest *t, bool v6)
{
    static const uint16_t short4[] = { 0, 19, 20, 39, 45, 51 };
    static const uint16_t short6[] = { 0, 19, 31 };
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    uint16_t dgram;
    Conn *c;
    Frame *f[3];
    unsigned i;

    /* larger than the frame */
    for (i = 0; i < 3; i++) {
        f[0] = seg(t, victim_new(t, v6), MSS);
        dgram = lduw_be_p(f[0]->data + f[0]->l3 + (v6 ? 4 : 2));
        frame_set_ip_length(f[0], i == 0 ? dgram + 1 :
                                  i == 1 ? dgram + 1000 : 0xffff);
        bad_now(t, bad, f[0]);
    }
    /* smaller than the IP and TCP headers */
    for (i = 0; i < (v6 ? ARRAY_SIZE(short6) : ARRAY_SIZE(short4)); i++) {
        f[0] = seg(t, victim_new(t, v6), MSS);
        frame_set_ip_length(f[0], v6 ? short6[i] : short4[i]);
        bad_now(t, bad, f[0]);
    }

    /* no payload declared: a pure ACK with the payload as trailer */
    f[0] = seg(t, victim_new(t, v6), MSS);
    frame_declare_payload(f[0], 0);
    bad_now(t, bad, f[0]);

    /* the first segment of a unit declares less than it carries */
    c = victim_new(t, v6);
    f[0] = seg(t, c, MSS);
    frame_declare_payload(f[0], 1000);
    c->next_off = f[0]->off + 1000;
    f[1] = seg(t, c, 1000);
    f[2] = seg(t, c, 1000);
    expect_unit(t, f, 3);
    expect_later(t);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);
    g_ptr_array_add(bad, f[2]);

    /* ... a segment in the middle of a unit */
    c = victim_new(t, v6);
    f[0] = seg(t, c, 1000);
    f[1] = seg(t, c, MSS);
    frame_declare_payload(f[1], 1000);
    c->next_off = f[1]->off + 1000;
    f[2] = seg(t, c, 1000);
    expect_unit(t, f, 3);
    expect_later(t);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);
    g_ptr_array_add(bad, f[2]);

    /* ... the last one, declaring less than the MSS: the unit ends */
    c = victim_new(t, v6);
    f[0] = seg(t, c, 1000);
    f[1] = seg(t, c, MSS);
    frame_declare_payload(f[1], 300);
    expect_unit(t, f, 2);
    g_ptr_array_add(bad, f[0]);
    g_ptr_array_add(bad, f[1]);

    hostile_burst_array(t, bad);
}

/*
 * IPv4 total length and IPv6 payload length larger than the frame, or
 * smaller than the headers: delivered at once, untouched.  Smaller than
 * the frame but covering the headers is legal: what follows the datagram
 * is a trailer, and a unit takes only the declared payload.
 */
static void test_hostile_ip_length(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);

    hostile_ip_length(t, false);
    hostile_ip_length(t, true);
    rsc_end(t);
}

/*
 * IPv4 IHL below 5, a version that is not the ethertype's, and IHL above
 * 5 without real options: delivered at once, untouched.
 */
static void test_hostile_ihl(const void *data)
{
    static const uint8_t version4[] = { 0x05, 0x65, 0xf5 };
    static const uint8_t version6[] = { 0x40, 0x00, 0xf0 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Frame *f;
    unsigned i;

    for (i = 0; i < 16; i++) {
        if (i == 5) {
            continue;
        }
        f = seg(t, victim_new(t, false), 200);
        f->data[f->l3] = 0x40 | i;
        ip4_fix_csum(f);
        bad_now(t, bad, f);
    }
    for (i = 0; i < ARRAY_SIZE(version4); i++) {
        f = seg(t, victim_new(t, false), 200);
        f->data[f->l3] = version4[i];
        ip4_fix_csum(f);
        bad_now(t, bad, f);
    }
    for (i = 0; i < ARRAY_SIZE(version6); i++) {
        f = seg(t, victim_new(t, true), 200);
        f->data[f->l3] = version6[i];
        bad_now(t, bad, f);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-ip-options", ==, 10);
    rsc_end(t);
}

/*
 * A TCP data offset below 5, past the segment, or past the IP datagram
 * into a trailer; and one that takes the payload for options: delivered
 * at once, untouched.
 */
static void test_hostile_data_offset(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f;
    unsigned i, v6;

    for (v6 = 0; v6 < 2; v6++) {
        for (i = 0; i < 5; i++) {
            f = seg(t, victim_new(t, v6), 200);
            f->data[f->l4 + 12] = i << 4;
            frame_fix_csums(f);
            bad_now(t, bad, f);
        }
        for (i = 9; i < 16; i++) {
            c = victim_new(t, v6);
            c->doff = i;
            bad_now(t, bad, seg(t, c, 0));
            if (i >= 11) {
                c->doff = i;
                bad_now(t, bad, seg(t, c, 10));
            }
        }
        c = victim_new(t, v6);
        c->doff = 15;
        c->trailer = 64;
        bad_now(t, bad, seg(t, c, 0));
        c = victim_new(t, v6);
        c->doff = 10;
        bad_now(t, bad, seg(t, c, 8));
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-malformed", >=, 2 * 15);
    rsc_end(t);
}

/*
 * Frames with Ethernet padding or a trailer - tiny frames padded to 60
 * bytes, a tiny datagram in a full-size frame, full-size and jumbo frames
 * with trailers - followed by full segments of their connection.  What
 * is held alone comes untouched, padding included; units never take it.
 */
static void test_hostile_trailer_then_full(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f[5];
    unsigned i, j, v6;

    for (v6 = 0; v6 < 2; v6++) {
        /* a tiny segment, a pure ACK, a tiny datagram in 1500 bytes */
        for (i = 0; i < 3; i++) {
            c = victim_new(t, v6);
            if (i < 2) {
                conn_set_opts(c, NULL, 0);
            }
            c->trailer = i == 0 ? 4 : i == 1 ? 6 : 1500;
            f[0] = seg(t, c, i == 1 ? 0 : 2);
            c->trailer = 0;
            segs(t, c, f + 1, 4, i < 2 ? 1460 : MSS);
            bad_now(t, bad, f[0]);
            expect_unit(t, f + 1, 4);
            expect_later(t);
            for (j = 1; j < 5; j++) {
                g_ptr_array_add(bad, f[j]);
            }
        }
        /* a 100- or 7000-byte trailer on the first or second segment */
        for (i = 0; i < 4; i++) {
            c = victim_new(t, v6);
            for (j = 0; j < 4; j++) {
                c->trailer = j != (i & 1) ? 0 : i < 2 ? 100 : 7000;
                f[j] = seg(t, c, MSS);
            }
            if (i == 2 && o.mergeable) {
                /*
                 * The trailer fills mergeable buffers that the datagram
                 * does not need, and a unit could not hand them back:
                 * the segment is delivered alone, untouched.
                 */
                bad_now(t, bad, f[0]);
                expect_unit(t, f + 1, 3);
            } else {
                g_ptr_array_add(bad, f[0]);
                expect_unit(t, f, 4);
            }
            for (j = 1; j < 4; j++) {
                g_ptr_array_add(bad, f[j]);
            }
            expect_later(t);
        }
    }
    /* what corrupted the heap upstream, on many connections */
    for (i = 0; i < 16; i++) {
        c = victim_new(t, false);
        conn_set_opts(c, NULL, 0);
        c->trailer = 4;
        f[0] = seg(t, c, 2);
        c->trailer = 0;
        segs(t, c, f + 1, 3, 1460);
        bad_now(t, bad, f[0]);
        expect_unit(t, f + 1, 3);
        expect_later(t);
        for (j = 1; j < 4; j++) {
            g_ptr_array_add(bad, f[j]);
        }
    }
    hostile_burst_array(t, bad);
    rsc_end(t);
}

/*
 * Floods of 1-byte and of zero-payload segments: 2000 1-byte segments of
 * one connection and 20 of each of 48 more make one unit each; 500
 * window updates are absorbed by a held unit; 300 duplicate ACKs (the
 * first flushes the unit of their connection) and 200 pure ACKs of other
 * connections each come alone, at once.
 */
static void test_hostile_tiny_flood(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    g_autofree Frame **f = g_new(Frame *, 2000);
    Frame *g[48][20], *x;
    Conn *c, *m[48];
    unsigned i, j;

    c = victim_new(t, false);
    segs(t, c, f, 2000, 1);
    expect_unit(t, f, 2000);
    expect_later(t);
    for (i = 0; i < 2000; i++) {
        g_ptr_array_add(bad, f[i]);
    }

    for (i = 0; i < 48; i++) {
        m[i] = victim_new(t, i & 1);
    }
    for (j = 0; j < 20; j++) {
        for (i = 0; i < 48; i++) {
            g[i][j] = seg(t, m[i], 1);
            g_ptr_array_add(bad, g[i][j]);
        }
    }
    for (i = 0; i < 48; i++) {
        expect_unit(t, g[i], 20);
        expect_later(t);
    }

    c = victim_new(t, true);
    segs(t, c, f, 3, MSS);
    for (i = 3; i < 503; i++) {
        c->win = 1000 + i;
        f[i] = seg(t, c, 0);
    }
    expect_unit(t, f, 503);
    expect_later(t);
    for (i = 0; i < 503; i++) {
        g_ptr_array_add(bad, f[i]);
    }

    c = victim_new(t, false);
    segs(t, c, f, 3, MSS);
    expect_unit(t, f, 3);
    for (i = 0; i < 3; i++) {
        g_ptr_array_add(bad, f[i]);
    }
    for (i = 0; i < 300; i++) {
        bad_now(t, bad, seg(t, c, 0));
    }

    for (i = 0; i < 200; i++) {
        x = seg(t, victim_new(t, i & 1), 0);
        bad_now(t, bad, x);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "window-updates", ==, 500);
    assert_stat(t, "bypass-dup-ack", ==, 1);
    rsc_end(t);
}

/*
 * 1-byte segments fill a unit to the frame limit (65483 segments, the
 * count needs all 16 bits of csum_start); the next segment starts a new
 * unit.
 */
static void test_hostile_tiny_fill_unit(const void *data)
{
    enum { FULL = MAX_FRAME - ETH_HLEN - IP4_HLEN - TCP_HLEN - 12 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autofree Frame **f = g_new(Frame *, FULL + 3);
    Conn *c = conn_new(t, false);

    segs(t, c, f, FULL + 3, 1);
    expect_unit(t, f, FULL);
    send_frames(t, f, FULL + 3);
    check_now(t);
    assert_stat(t, "flush-full", ==, 1);
    expect_unit(t, f + FULL, 3);
    expire_and_check(t);
    rsc_end(t);
}

/*
 * Sequence, ACK and timestamp wrapping at 2^32 in the middle of a unit:
 * still one unit.  An older timestamp, an older ACK or retransmitted data
 * across the wrap ends it.
 */
static void test_hostile_wrap_mid_unit(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *f[4];
    unsigned i, j;

    /* wrap on a segment boundary, then inside a segment (IPv6) */
    for (i = 0; i < 2; i++) {
        c = victim_new(t, i);
        c->isn = i ? -500 : -2 * MSS;
        c->ack = -3000;
        c->tsval = -2;
        for (j = 0; j < 4; j++) {
            f[j] = seg(t, c, MSS);
            c->ack += 1000;
            c->tsval++;
            g_ptr_array_add(bad, f[j]);
        }
        expect_unit(t, f, 4);
        expect_later(t);
    }
    /* older TSval, older ACK, retransmission, each across the wrap */
    for (i = 0; i < 3; i++) {
        c = victim_new(t, i & 1);
        c->isn = -MSS;
        c->tsval = 5;
        c->ack = 3;
        segs(t, c, f, 2, MSS);
        if (i == 0) {
            c->tsval = -16;
        } else if (i == 1) {
            c->ack = -16;
        } else {
            c->next_off = 0;
        }
        segs(t, c, f + 2, 2, MSS);
        expect_unit(t, f, 2);
        expect_unit(t, f + 2, 2);
        expect_later(t);
        for (j = 0; j < 4; j++) {
            g_ptr_array_add(bad, f[j]);
        }
    }
    hostile_burst_array(t, bad);
    rsc_end(t);
}

/* A copy of @f with an 802.1Q tag, as a frame of no connection. */
static Frame *vlan_copy(RscTest *t, const Frame *f)
{
    g_autofree uint8_t *buf = g_malloc(f->len + 4);

    memcpy(buf, f->data, 12);
    stw_be_p(buf + 12, ETH_P_8021Q);
    stw_be_p(buf + 14, 7);
    memcpy(buf + 16, f->data + 12, f->len - 12);
    return raw_frame(t, buf, f->len + 4);
}

/*
 * 802.1Q and 802.1ad tagged frames, whole or cut short, runts of 1 to 13
 * bytes, and frames that end inside the IP header: delivered at once,
 * untouched.  A tagged copy of a segment does not disturb the untagged
 * unit of its connection.
 */
static void test_hostile_vlan_runt(const void *data)
{
    static const size_t cut[] = { 14, 15, 16, 17, 18, 19, 30, 38, 50, 58 };
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c, *tagged;
    Frame *f[3], *x;
    unsigned i, v6;

    for (v6 = 0; v6 < 2; v6++) {
        tagged = victim_new(t, v6);
        tagged->vlan = true;
        segs(t, tagged, f, 3, MSS);
        for (i = 0; i < 3; i++) {
            bad_now(t, bad, f[i]);
        }
        /* an 802.1ad tag */
        x = seg(t, tagged, MSS);
        stw_be_p(x->data + 12, 0x88a8);
        bad_now(t, bad, x);
        for (i = 0; i < ARRAY_SIZE(cut); i++) {
            bad_now(t, bad, raw_frame(t, x->data, cut[i]));
            bad_now(t, bad, raw_frame(t, f[0]->data, cut[i]));
        }
        /* untagged unit, tagged copy of its second segment in between */
        c = victim_new(t, v6);
        segs(t, c, f, 3, MSS);
        g_ptr_array_add(bad, f[0]);
        bad_now(t, bad, vlan_copy(t, f[1]));
        g_ptr_array_add(bad, f[1]);
        g_ptr_array_add(bad, f[2]);
        expect_unit(t, f, 3);
        expect_later(t);
    }
    x = seg(t, victim_new(t, false), MSS);
    for (i = 1; i < ETH_HLEN; i++) {
        bad_now(t, bad, raw_frame(t, x->data, i));
    }
    hostile_burst_array(t, bad);
    rsc_end(t);
}

/*
 * TCP/IP frames cut at every length up to one byte past their headers,
 * IPv4 and IPv6, with and without an 802.1Q tag: delivered at once,
 * untouched, never read past their end.
 */
static void test_hostile_truncated(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    Conn *c;
    Frame *x;
    unsigned i, k;

    for (k = 0; k < 4; k++) {
        c = victim_new(t, k & 1);
        c->vlan = k >= 2;
        x = seg(t, c, 100);
        for (i = 1; i <= x->hdr_len + 1; i++) {
            bad_now(t, bad, raw_frame(t, x->data, i));
        }
        hostile_burst_array(t, bad);
    }
    rsc_end(t);
}

/*
 * Bad TCP checksums (IPv4 and IPv6), bad IPv4 header checksums, both,
 * and a zero TCP checksum: each segment comes alone, untouched, even
 * several in a row of one connection; their good retransmissions merge.
 */
static void test_hostile_bad_checksums(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    g_autoptr(GPtrArray) bad = g_ptr_array_new();
    unsigned i, k;
    Conn *c;
    Frame *f[3];

    for (k = 0; k < 5; k++) {
        c = victim_new(t, k == 1);
        c->bad_tcp_csum = k < 2 || k == 3;
        c->bad_ip_csum = k >= 2 && k < 4;
        segs(t, c, f, 3, MSS);
        for (i = 0; i < 3; i++) {
            if (k == 4) {
                g_assert_cmpuint(lduw_be_p(f[i]->data + f[i]->l4 + 16) %
                                 0xffff, !=, 0);
                stw_be_p(f[i]->data + f[i]->l4 + 16, 0);
            }
            bad_now(t, bad, f[i]);
        }
        c->bad_tcp_csum = c->bad_ip_csum = false;
        for (i = 0; i < 3; i++) {
            f[i] = tcp_frame(t, c, i * MSS, MSS);
            g_ptr_array_add(bad, f[i]);
        }
        expect_unit(t, f, 3);
        expect_later(t);
    }
    hostile_burst_array(t, bad);
    assert_stat(t, "bypass-checksum", ==, 15);
    rsc_end(t);
}

/*
 * A frame of 0 bytes (a socket peer can send one) does not stall the
 * receive path: it is dropped or comes as an empty packet, and the
 * frames after it arrive.
 */
static void test_hostile_zero_length(const void *data)
{
    RscOpts o = timer_opts(data);
    RscTest *t = rsc_start(&o);
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    uint8_t none = 0;
    unsigned empty = 0;
    Frame *zero, *f[4];
    RscStream *s;

    segs(t, victim_new(t, false), f, 4, MSS);
    s = stream_new(t);
    zero = raw_frame(t, &none, 0);
    send1(t, zero);
    stream_send(t, s, f, 4);
    clock_step(t, RSC_INTERVAL);
    while (!stream_complete(s)) {
        RxPacket p;

        if (!rx_ready(t)) {
            if (g_get_monotonic_time() > deadline) {
                g_autoptr(QDict) st = rsc_stats(t);

                rsc_fail("%u of 4 frames after a 0-byte frame arrived: the "
                         "receive path is stalled (not-accepted %" PRIu64
                         ")", s->next[0], stats_get(st, "not-accepted"));
            }
            continue;
        }
        rx_pop(t, &p);
        if (p.len == 0 && !empty++) {
            rx_packet_free(&p);
            continue;
        }
        check_stream_packet(t, &p, s->frames, s->next);
        rx_packet_free(&p);
    }
    assert_idle(t, "the frames after the 0-byte frame were received");
    stream_free(s);
    rsc_end(t);
}

static void test_skip(const void *data)
{
    g_test_skip(data);
}

/* --- registration -------------------------------------------------------- */

enum {
    MRG = 1,            /* also with mergeable rx buffers */
    TAP = 2,            /* also through the tap backend */
    TAP_ONLY = 4,       /* only through the tap backend */
    GRO = 8,            /* needs the DATA_VALID path (bridge, NAPI tap) */
};

/* --- demo: a real TCP stream from the Linux kernel --------------------- */

/*
 * The kernel of the test's network namespace sends DEMO_BYTES over TCP to
 * a "guest" at DEMO_GUEST_IP, behind the tap.  The guest is this test: it
 * answers the handshake, checks every payload byte, and ACKs through the
 * device's transmit queue.  Run once with RSC off and once per flush mode;
 * `make demo` prints the report.
 */
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
            buf[i] = payload_byte(0, off + i);
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
    uint8_t f[ETH_HLEN + IP4_HLEN + TCP_HLEN + 4] = { 0 };
    uint8_t *ip = f + ETH_HLEN, *tcp = ip + IP4_HLEN;
    unsigned tcphl = TCP_HLEN + (mss_option ? 4 : 0);
    uint32_t sum;

    memcpy(f, d->host_mac, 6);
    memcpy(f + 6, guest_mac, 6);
    stw_be_p(f + 12, ETH_P_IP);
    ip[0] = 0x45;
    stw_be_p(ip + 2, IP4_HLEN + tcphl);
    stw_be_p(ip + 4, d->ip_id++);
    stw_be_p(ip + 6, IP_DF);
    ip[8] = 64;
    ip[9] = 6;
    stl_be_p(ip + 12, DEMO_GUEST_IP);
    stl_be_p(ip + 16, DEMO_HOST_IP);
    stw_be_p(ip + 10, csum_fold(csum_add(0, ip, IP4_HLEN)) ^ 0xffff);
    stw_be_p(tcp, DEMO_PORT);
    stw_be_p(tcp + 2, d->peer_port);
    stl_be_p(tcp + 4, d->snd_nxt);
    stl_be_p(tcp + 8, d->rcv_nxt);
    tcp[12] = (tcphl / 4) << 4;
    tcp[13] = flags;
    stw_be_p(tcp + 14, 65535);
    if (mss_option) {
        tcp[20] = 2;
        tcp[21] = 4;
        stw_be_p(tcp + 22, 1460);
    }
    sum = csum_add(pseudo_sum(ip, false, tcphl), tcp, tcphl);
    stw_be_p(tcp + 16, csum_fold(sum) ^ 0xffff);
    demo_tx(d, f, ETH_HLEN + IP4_HLEN + tcphl);
    if (flags & (TCP_SYN | TCP_FIN)) {
        d->snd_nxt++;
    }
}

/* Handle one packet the guest received; count it in @r. */
static void demo_rx(DemoTcp *d, DemoRun *r, const RxPacket *p)
{
    const uint8_t *ip = p->data + ETH_HLEN, *tcp;
    uint32_t seq, plen, off, i;
    unsigned iphl, tcphl;
    uint8_t flags;

    if (p->len < ETH_HLEN + IP4_HLEN + TCP_HLEN ||
        lduw_be_p(p->data + 12) != ETH_P_IP || ip[9] != 6 ||
        ldl_be_p(ip + 16) != DEMO_GUEST_IP) {
        return;     /* not of the stream */
    }
    iphl = (ip[0] & 0xf) * 4;
    tcp = ip + iphl;
    tcphl = (tcp[12] >> 4) * 4;
    if (lduw_be_p(tcp + 2) != DEMO_PORT ||
        lduw_be_p(ip + 2) > p->len - ETH_HLEN) {
        rsc_fail("demo: unexpected packet of %zu bytes", p->len);
    }
    seq = ldl_be_p(tcp + 4);
    flags = tcp[13];
    plen = lduw_be_p(ip + 2) - iphl - tcphl;
    r->pkts_out++;
    if (p->hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        r->coalesced++;
        if (csum_fold(csum_add(0, ip, iphl)) != 0xffff) {
            rsc_fail("demo: coalesced packet with a bad IPv4 checksum");
        }
    }

    if (flags & TCP_SYN) {
        d->peer_port = lduw_be_p(tcp);
        d->peer_isn = seq;
        d->rcv_nxt = seq + 1;
        d->snd_nxt = DEMO_ISN;
        d->synced = true;
        demo_send_tcp(d, TCP_SYN | TCP_ACK, true);
        return;
    }
    if (!d->synced) {
        return;
    }
    if (plen && seq == d->rcv_nxt) {
        off = seq - d->peer_isn - 1;
        for (i = 0; i < plen; i++) {
            if (tcp[tcphl + i] != payload_byte(0, off + i)) {
                rsc_fail("demo: stream byte %u is 0x%02x, expected 0x%02x",
                         off + i, tcp[tcphl + i], payload_byte(0, off + i));
            }
        }
        d->rcv_nxt += plen;
        r->bytes += plen;
    }
    if ((flags & TCP_FIN) && seq + plen == d->rcv_nxt && !d->fin) {
        d->rcv_nxt++;
        d->fin = true;
        demo_send_tcp(d, TCP_FIN | TCP_ACK, false);
        return;
    }
    demo_send_tcp(d, TCP_ACK, false);
}

static void demo_run(DemoRun *r)
{
    RscOpts o = { .interval = r->interval, .tap = true };
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
    const uint8_t *ip = p->data + ETH_HLEN, *tcp = ip + IP4_HLEN;
    uint32_t off, plen, i;
    unsigned tcphl;

    g_assert_cmpuint(p->len, >=, ETH_HLEN + IP4_HLEN + TCP_HLEN);
    tcphl = (tcp[12] >> 4) * 4;
    plen = lduw_be_p(ip + 2) - IP4_HLEN - tcphl;
    off = ldl_be_p(tcp + 4) - c->isn;
    g_assert_cmpuint(off, ==, r->bytes);
    for (i = 0; i < plen; i++) {
        if (tcp[tcphl + i] != payload_byte(c->idx, off + i)) {
            rsc_fail("demo: stream byte %u is 0x%02x, expected 0x%02x",
                     off + i, tcp[tcphl + i], payload_byte(c->idx, off + i));
        }
    }
    r->bytes += plen;
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
    RscOpts o = { .interval = r->interval };
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

typedef struct RscTestCase {
    const char *name;
    GTestDataFunc fn;
    unsigned variants;
} RscTestCase;

static const RscTestCase rsc_tests[] = {
    { "merge/ipv4", test_merge_ipv4, MRG | TAP },
    { "merge/ipv6", test_merge_ipv6, MRG | TAP },
    { "merge/no-options", test_merge_no_options, 0 },
    { "merge/timestamps", test_merge_timestamps, MRG | TAP },
    { "merge/timestamps-padded", test_merge_timestamps_padded, 0 },
    { "merge/timestamp-wrap", test_merge_timestamp_wrap, 0 },
    { "merge/seq-wrap", test_merge_seq_wrap, 0 },
    { "merge/ack-advancing", test_merge_ack_advancing, 0 },
    { "merge/window-change", test_merge_window_change, 0 },
    { "merge/psh", test_merge_psh, 0 },
    { "merge/ttl-minimum", test_merge_ttl_minimum, 0 },
    { "merge/hop-limit-minimum", test_merge_hop_limit_minimum, 0 },
    { "merge/df-clear", test_merge_df_clear, 0 },
    { "merge/ecn-equal", test_merge_ecn_equal, 0 },
    { "merge/ece-equal", test_merge_ece_equal, 0 },
    { "merge/short-segment", test_merge_short_segment, MRG | TAP },
    { "merge/larger-than-mss", test_merge_larger_than_mss, 0 },
    { "merge/padding-not-copied", test_merge_padding_not_copied, MRG | TAP },
    { "hdr/single-untouched", test_hdr_single_untouched, MRG | TAP },
    { "hdr/single-padded", test_hdr_single_padded, 0 },
    { "hdr/segment-count-le", test_hdr_segment_count_le, MRG | TAP },
    { "limit/ipv4-exact", test_limit_ipv4_exact, MRG | TAP },
    { "limit/ipv4-full", test_limit_ipv4_full, MRG },
    { "limit/ipv6-exact", test_limit_ipv6_exact, MRG },
    { "limit/ipv6-full", test_limit_ipv6_full, MRG | TAP },
    { "limit/guest-buffer", test_limit_guest_buffer, 0 },
    { "limit/small-buffers", test_limit_small_buffers, 0 },
    { "exception/fin", test_exception_fin, TAP },
    { "exception/rst", test_exception_rst, 0 },
    { "exception/urg", test_exception_urg, 0 },
    { "exception/other-flag", test_exception_other_flag, 0 },
    { "exception/syn", test_exception_syn, 0 },
    { "exception/out-of-order", test_exception_out_of_order, 0 },
    { "exception/retransmit", test_exception_retransmit, 0 },
    { "exception/timestamp-older", test_exception_timestamp_older, 0 },
    { "exception/ack-older", test_exception_ack_older, 0 },
    { "exception/tcp-option", test_exception_tcp_option, 0 },
    { "exception/option-layout", test_exception_option_layout, 0 },
    { "exception/ecn-change", test_exception_ecn_change, 0 },
    { "exception/ece-change", test_exception_ece_change, 0 },
    { "exception/cwr-change", test_exception_cwr_change, 0 },
    { "exception/df-change", test_exception_df_change, 0 },
    { "exception/traffic-class", test_exception_traffic_class, 0 },
    { "exception/flow-label", test_exception_flow_label, 0 },
    { "exception/bad-checksum", test_exception_bad_checksum, MRG | TAP },
    { "exception/bad-checksum-ipv6", test_exception_bad_checksum_ipv6,
      0 },
    { "exception/ip-header-checksum", test_exception_ip_header_checksum,
      0 },
    { "pure-ack/window-update", test_pure_ack_window_update, MRG | TAP },
    { "pure-ack/duplicate", test_pure_ack_duplicate, 0 },
    { "pure-ack/advancing", test_pure_ack_advancing, 0 },
    { "pure-ack/no-unit", test_pure_ack_no_unit, 0 },
    { "bypass/not-tcpip", test_bypass_not_tcpip, 0 },
    { "bypass/vlan", test_bypass_vlan, 0 },
    { "bypass/ipv4-options", test_bypass_ipv4_options, 0 },
    { "bypass/ipv4-fragment", test_bypass_ipv4_fragment, TAP },
    { "bypass/ipv6-ext-header", test_bypass_ipv6_ext_header, 0 },
    { "bypass/malformed", test_bypass_malformed, MRG },
    { "order/ip-options-after-unit", test_order_ip_options, 0 },
    { "order/fragment-after-unit", test_order_fragment, 0 },
    { "order/malformed-after-unit", test_order_malformed, 0 },
    { "order/other-flows-unaffected", test_order_other_flows, 0 },
    { "timer/interval", test_timer_interval, MRG | TAP },
    { "timer/gaps", test_timer_gaps, 0 },
    { "timer/default-interval", test_timer_default_interval, 0 },
    { "burst/end", test_burst_end, MRG },
    { "burst/single", test_burst_single, 0 },
    { "flows/interleaved-64", test_flows_interleaved, MRG | TAP },
    { "flows/evict-oldest", test_flows_evict_oldest, 0 },
    { "flows/table-bounded", test_flows_table_bounded, 0 },
    { "flows/ipv4-ipv6-same-ports", test_flows_ipv4_ipv6_same_ports, 0 },
    { "flows/memory-bounded", test_flows_memory_bounded, 0 },
    { "ctrl/rsc-ext-accepted", test_ctrl_rsc_ext_accepted, 0 },
    { "ctrl/rsc-ext-not-negotiated", test_ctrl_rsc_ext_not_negotiated,
      0 },
    { "ctrl/offloads-toggle", test_ctrl_offloads_toggle, TAP },
    { "ctrl/tso4-off", test_ctrl_tso4_off, 0 },
    { "ctrl/invalid-no-change", test_ctrl_invalid_no_change, 0 },
    { "flush/vm-stop", test_flush_vm_stop, 0 },
    { "flush/link-down", test_flush_link_down, 0 },
    { "flush/reset", test_flush_reset, 0 },
    { "lifecycle/migration", test_lifecycle_migration, MRG },
    { "lifecycle/timer-race", test_lifecycle_timer_race, MRG | TAP },
    { "lifecycle/burst-race", test_lifecycle_burst_race, MRG },
    { "lossless/ring-pressure", test_lossless_ring_pressure, MRG | TAP },
    { "lossless/ring-exhausted", test_lossless_ring_exhausted, MRG },
    { "stats/counters", test_stats_counters, 0 },
    { "hostile/tcp-options", test_hostile_tcp_options, 0 },
    { "hostile/ip-length", test_hostile_ip_length, MRG | TAP },
    { "hostile/ihl", test_hostile_ihl, 0 },
    { "hostile/data-offset", test_hostile_data_offset, 0 },
    { "hostile/trailer-then-full", test_hostile_trailer_then_full,
      MRG | TAP },
    { "hostile/tiny-flood", test_hostile_tiny_flood, MRG },
    { "hostile/tiny-fill-unit", test_hostile_tiny_fill_unit, MRG },
    { "hostile/wrap-mid-unit", test_hostile_wrap_mid_unit, 0 },
    { "hostile/vlan-runt", test_hostile_vlan_runt, 0 },
    { "hostile/truncated", test_hostile_truncated, 0 },
    { "hostile/zero-length", test_hostile_zero_length, 0 },
    { "hostile/bad-checksums", test_hostile_bad_checksums, TAP },
    { "needs-csum/merge", test_tap_needs_csum_merge, TAP_ONLY | MRG },
    { "needs-csum/single-untouched", test_tap_needs_csum_single, TAP_ONLY },
    { "gso/passthrough", test_tap_gso_passthrough, TAP_ONLY | MRG },
    { "gso/after-unit", test_tap_gso_after_unit, TAP_ONLY },
    { "data-valid/merge", test_tap_data_valid_merge, TAP_ONLY | GRO | MRG },
    { "data-valid/single-untouched", test_tap_data_valid_single,
      TAP_ONLY | GRO },
};

static void add_test(const char *prefix, const RscTestCase *tc,
                     const RscVariant *v)
{
    g_autofree char *path = g_strdup_printf("virtio-net-rsc/%s%s", prefix,
                                            tc->name);

    if (v->tap && tap_unavailable) {
        qtest_add_data_func(path, tap_unavailable, test_skip);
    } else if ((tc->variants & GRO) && gro_unavailable) {
        qtest_add_data_func(path, gro_unavailable, test_skip);
    } else {
        qtest_add_data_func(path, v, tc->fn);
    }
}

int main(int argc, char **argv)
{
    unsigned i;

    /* before anything can start a thread */
    tap_netns_setup();
    g_test_init(&argc, &argv, NULL);
    for (i = 0; i < ARRAY_SIZE(rsc_tests); i++) {
        const RscTestCase *tc = &rsc_tests[i];

        if (!(tc->variants & TAP_ONLY)) {
            add_test("", tc, &variant_big);
            if (tc->variants & MRG) {
                add_test("mergeable/", tc, &variant_mrg);
            }
        }
        if (tc->variants & (TAP | TAP_ONLY)) {
            add_test("tap/", tc, &variant_tap);
            if (tc->variants & MRG) {
                add_test("tap/mergeable/", tc, &variant_tap_mrg);
            }
        }
    }
    qtest_add_func("virtio-net-rsc/demo/kernel-tcp", test_demo_kernel_tcp);
    return g_test_run();
}
