// libnftnl + libmnl and the kernel headers that define their netlink vocabulary.
// glibc first: <linux/libc-compat.h> then skips the uapi copies of in6_addr & co, which would clash with Glibc's.
#include <netinet/in.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/trace.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/veth.h>
// Namespaces and per-thread credentials (NetworkNamespace): glibc declares setns/unshare only under
// _GNU_SOURCE, which Swift's Glibc module is built without; setfsuid/setfsgid live in <sys/fsuid.h>.
#include <sys/fsuid.h>
extern int setns(int fd, int nstype);
extern int unshare(int flags);
