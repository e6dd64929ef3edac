/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The fixture of the virtio-net RSC qtests: a device and a guest driver
 * that negotiates like the Windows netkvm driver, a socketpair or tap
 * backend to inject frames, and a checker for what the guest receives
 *
 * Shared by virtio-net-rsc-test.c, virtio-net-rsc-gro-test.c (the
 * driver negotiates like Linux: RscOpts' rsc_gro, no_rsc_ext,
 * ack_offered) and virtio-net-rsc-mq-test.c (several queue pairs on a
 * multi-queue tap: it starts the device with rsc_launch() and brings
 * its own ring driver, then checks packets with check_next_packet()).
 *
 * A test states the frames it sends (built from a Conn, the sender's
 * side of a TCP connection) and the packets it expects (a frame
 * untouched, or a unit coalesced from a list of segments); the checker
 * pops the used ring, matches each packet against the next expectation
 * of its connection and compares every byte with the reference of
 * tests/include/virtio-net-rsc-frames.h, naming the first field that
 * differs.
 */

#ifndef TESTS_QTEST_VIRTIO_NET_RSC_UTILS_H
#define TESTS_QTEST_VIRTIO_NET_RSC_UTILS_H

#include <net/if.h>
#include "libqtest.h"
#include "qobject/qdict.h"
#include "libqos/libqos-malloc.h"
#include "libqos/pci.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_net.h"
#include "../include/virtio-net-rsc-frames.h"
#include <linux/if_ether.h>

#define RSC_TIMEOUT_US          (30 * G_USEC_PER_SEC)
#define RSC_INTERVAL            1000000     /* ns, as in the HLK setup */
#define RSC_DEFAULT_INTERVAL    300000
#define RSC_PCI_SLOT            4

#define VNET_HDR_LEN            12          /* struct virtio_net_hdr_v1 */
#define VNET_HASH_HDR_LEN       20          /* virtio_net_hdr_v1_hash */
#define RSC_MAX_PAIRS           4           /* queue pairs of a test */
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

extern const uint8_t guest_mac[6];
extern const uint8_t peer_mac[6];

/* Why tap tests cannot run here, or NULL (see tap_netns_setup()). */
extern char *tap_unavailable;

/*
 * A tap with NAPI (so GRO validates checksums) on a bridge that every
 * test's tap joins: frames written to it reach QEMU marked DATA_VALID.
 */
extern int gro_fd;
extern char *gro_unavailable;

/* How a test wants the device and the guest driver set up. */
typedef struct RscOpts {
    uint32_t interval;      /* rsc_interval in ns, 0: RSC_INTERVAL */
    bool burst;             /* rsc_interval=0: flush at the burst's end */
    bool default_interval;  /* leave rsc_interval unset */
    unsigned max_flows;     /* rsc_max_flows, 0: device default */
    bool mergeable;         /* negotiate MRG_RXBUF, 4 KiB buffers */
    uint32_t buf_size;      /* rx buffer size with vnet header, 0: default */
    unsigned nbufs;         /* rx buffers posted at start, 0: whole ring */
    bool no_rsc_ext;        /* negotiate without VIRTIO_NET_F_RSC_EXT */
    bool tap;               /* tap backend with vnet headers */
    bool rsc_gro;           /* rsc_gro=on: the GRO profile for Linux */
    bool no_offer_rsc_ext;  /* leave guest_rsc_ext off on the device */
    uint64_t drop_features; /* features the driver does not ack */
    unsigned pairs;         /* queue pairs (a tap has that many), 0: 1 */
    bool rss;               /* mq=on,rss=on,hash=on */
    bool packed;            /* packed=on */
    bool in_order;          /* in_order=on */
    unsigned ring_size;     /* rx_queue_size, 0: RX_RING_SIZE */
    const char *netdev;     /* -netdev of the caller's own backend */
    const char *device;     /* more -device options, or NULL */
    const char *args;       /* more command line options, or NULL */
    bool ack_offered;       /* ack the wanted features offered (Linux) */
} RscOpts;

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
    bool ip_id_fixed;       /* the IPv4 ID does not advance per frame */
    uint8_t ip_opts_len;    /* IPv4 option bytes, multiple of 4 */
    bool hbh;               /* IPv6 hop-by-hop extension header */
    uint8_t ext[64];        /* IPv6 extension headers after the IPv6 */
    uint8_t ext_len;        /* header (and @hbh), @ext_len bytes, the */
    uint8_t ext_nh;         /* first of type @ext_nh; chained by the test */
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
    uint8_t hdr[VNET_HASH_HDR_LEN];     /* with the hash report, if any */
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
    uint32_t hdr_len;       /* vnet header bytes in receive buffers */
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
/* A migration from the QEMU of a test to a new one. */
typedef struct RscMigration {
    QTestState *dst;        /* the destination */
    int sock;               /* our end of the destination's socketpair */
    char *dir;              /* holds the migration socket */
    char *uri;              /* of the migration socket */
} RscMigration;

G_GNUC_PRINTF(4, 5) G_NORETURN
void rsc_fail_at(const char *file, int line, const char *func,
                 const char *fmt, ...);
#define rsc_fail(...) rsc_fail_at(__FILE__, __LINE__, G_STRFUNC, __VA_ARGS__)

/* frames */
Frame *raw_frame(RscTest *t, const void *data, size_t len);
Conn *conn_new(RscTest *t, bool v6);
void conn_addrs(const Conn *c, uint8_t *src, uint8_t *dst);
void conn_set_opts(Conn *c, const uint8_t *opts, size_t len);
Frame *tcp_frame(RscTest *t, Conn *c, uint32_t off, uint32_t plen);
Frame *seg(RscTest *t, Conn *c, uint32_t plen);
void segs(RscTest *t, Conn *c, Frame **f, unsigned n, uint32_t plen);
char *describe_frame(RscTest *t, const uint8_t *p, size_t len);
void hexdump(const char *what, const uint8_t *p, size_t len);

/* the tap backend, the device and the guest driver */
void tap_netns_setup(void);
void rx_kick(RscTest *t);
uint16_t used_idx(RscTest *t, QVirtQueue *vq);
uint8_t ctrl_offloads(RscTest *t, uint64_t offloads);
void rsc_driver_init(RscTest *t);
void rsc_machine_args(GString *args, const RscOpts *opts);
void rsc_launch(RscTest *t, const RscOpts *opts);
void rsc_init(RscTest *t, const RscOpts *opts);
void rsc_fini(RscTest *t);
RscTest *rsc_start(const RscOpts *opts);
void rsc_end(RscTest *t);

/* sending */
void send_frames(RscTest *t, Frame **f, unsigned n);
void send1(RscTest *t, Frame *f);
uint64_t tap_frames_read(RscTest *t);
void backend_sync(RscTest *t);
void clock_step(RscTest *t, int64_t ns);

/* migration */
void rsc_migrate_start(RscTest *t, RscMigration *m);
QDict *rsc_migrate_finish(RscTest *t, RscMigration *m);
QDict *rsc_migrate(RscTest *t);

/* counters */
QDict *rsc_stats(RscTest *t);
uint64_t stats_get(QDict *s, const char *name);
uint64_t rsc_stat(RscTest *t, const char *name);

#define assert_stat(t, name, cmp, val) do {                              \
        uint64_t v_ = rsc_stat(t, name);                                  \
        uint64_t want_ = (val);                                           \
        if (!(v_ cmp want_)) {                                            \
            rsc_fail("counter %s is %" PRIu64 ", expected " #cmp " %"     \
                     PRIu64, name, v_, want_);                            \
        }                                                                 \
    } while (0)

/* receiving */
void rx_packet_free(RxPacket *p);
bool rx_ready(RscTest *t);
uint64_t rx_buf(RscTest *t, uint32_t id);
void rx_pop(RscTest *t, RxPacket *p);
void assert_idle(RscTest *t, const char *why);

/* expectations */
void expect_frame(RscTest *t, Frame *f);
void expect_frames(RscTest *t, Frame **f, unsigned n);
void expect_unit(RscTest *t, Frame **f, unsigned n);
void check_expected_full(RscTest *t, bool required_only);
void check_expected(RscTest *t);
int rx_conn(RscTest *t, const RxPacket *p);
unsigned check_next_packet(RscTest *t, const RxPacket *p, GPtrArray *frames,
                           unsigned *next);
void check_stream_packet(RscTest *t, const RxPacket *p,
                         GPtrArray **conn_frames, unsigned *next);

#endif
