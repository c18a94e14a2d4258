/// What nft 1.0.6 generates for `SampleRulesets.everything`: the rule blocks of
/// `nft --debug=netlink -f` of its rendered text (`NftTextRenderer.render`), in batch order. Recorded
/// once from nft so that the encoding can be checked without root; the kernel tests compare against a
/// live nft as well.
enum NftGoldens {
    static let everythingRules = #"""
inet istio-proxy-nat prerouting
  [ meta load iifname => reg 1 ]
  [ cmp eq reg 1 0x31687465 0x00000000 0x00000000 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x13excluded interface\x00 }

inet istio-proxy-nat prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-inbound ]
  userdata = { \x00\x08inbound\x00 }

inet istio-proxy-nat output
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-output ]
  userdata = { \x00\x0dall outbound\x00 }

inet istio-proxy-nat istio-inbound
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ cmp eq reg 1 0x0000a03a ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0ctunnel port\x00 }

inet istio-proxy-nat istio-inbound
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ lookup reg 1 set inbound-exclude-ports ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x17excluded inbound ports\x00 }

inet istio-proxy-nat istio-inbound
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-in-redirect ]

inet istio-proxy-nat istio-in-redirect
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x00009e3a ]
  [ redir proto_min reg 1 flags 0x2 ]
  userdata = { \x00\x13to inbound capture\x00 }

inet istio-proxy-nat istio-redirect
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x0000993a ]
  [ redir proto_min reg 1 flags 0x2 ]
  userdata = { \x00\x14to outbound capture\x00 }

inet istio-proxy-nat istio-output
  [ meta load oifname => reg 1 ]
  [ cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 12 => reg 1 ]
  [ cmp eq reg 1 0x0600007f ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x14inbound passthrough\x00 }

inet istio-proxy-nat istio-output
  [ meta load oifname => reg 1 ]
  [ cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 8 => reg 1 ]
  [ cmp eq reg 1 0x00000000 0x00000000 0x00000000 0x06000000 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x17inbound passthrough v6\x00 }

inet istio-proxy-nat istio-output
  [ meta load oifname => reg 1 ]
  [ cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000 ]
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp neq reg 1 0x0100007f ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ cmp neq reg 1 0x0000a03a ]
  [ meta load skuid => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-in-redirect ]
  userdata = { \x00\x12app to own pod IP\x00 }

inet istio-proxy-nat istio-output
  [ meta load oifname => reg 1 ]
  [ cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000 ]
  [ meta load skuid => reg 1 ]
  [ cmp neq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0enot the proxy\x00 }

inet istio-proxy-nat istio-output
  [ meta load skuid => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0aproxy uid\x00 }

inet istio-proxy-nat istio-output
  [ meta load skgid => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0aproxy gid\x00 }

inet istio-proxy-nat istio-output
  [ meta load skgid => reg 1 ]
  [ cmp neq reg 1 0x000000ca ]
  [ meta load skgid => reg 1 ]
  [ cmp neq reg 1 0x000000cb ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0downer groups\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x0100007f ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x09loopback\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ lookup reg 1 set outbound-exclude-ipv4 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0cexcluded v4\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ lookup reg 1 set outbound-exclude-ipv6 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 return ]
  userdata = { \x00\x0cexcluded v6\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x0000f0ff ) ^ 0x00000000 ]
  [ cmp eq reg 1 0x0000100a ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-redirect ]
  userdata = { \x00\x0bodd prefix\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 1b @ network header + 16 => reg 1 ]
  [ cmp neq reg 1 0x0000000a ]
  [ payload load 4b @ network header + 12 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0xfeffffff ) ^ 0x00000000 ]
  [ cmp neq reg 1 0x0202010a ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x11negated prefixes\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0xffffffff 0x00000080 0x00000000 0x00000000 ) ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]
  [ cmp eq reg 1 0xb80d0120 0x00000000 0x00000000 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0av6 prefix\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x00000000 ) ^ 0x00000000 ]
  [ cmp eq reg 1 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0ev4 everything\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x00000000 0x00000000 0x00000000 0x00000000 ) ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]
  [ cmp neq reg 1 0x00000000 0x00000000 0x00000000 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0bv6 nothing\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x0a0200c0 ]
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000011 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ cmp eq reg 1 0x00003500 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x0000cd3a ]
  [ redir proto_min reg 1 flags 0x2 ]
  userdata = { \x00\x07dns v4\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ cmp eq reg 1 0xb80d0120 0x00000000 0x00000000 0x53000000 ]
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ cmp eq reg 1 0x00003500 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x0000cd3a ]
  [ redir proto_min reg 1 flags 0x2 ]
  userdata = { \x00\x0bdns v6 tcp\x00 }

inet istio-proxy-nat istio-output
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000011 ]
  [ payload load 4b @ transport header + 0 => reg 1 ]
  [ cmp eq reg 1 0x35003500 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0dmerged ports\x00 }

inet istio-proxy-nat istio-output
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 12 => reg 1 ]
  [ cmp eq reg 1 0x016433c6 ]
  [ payload load 4b @ transport header + 0 => reg 1 ]
  [ cmp eq reg 1 0x5000901f ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0emerged across\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 12 => reg 1 ]
  [ cmp eq reg 1 0x016433c6 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x017100cb ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0etwo addresses\x00 }

inet istio-proxy-nat istio-output
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000011 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ lookup reg 1 set inbound-exclude-ports ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0dudp port set\x00 }

inet istio-proxy-nat istio-output
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ lookup reg 1 set everything-ipv4 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0dwhole v4 set\x00 }

inet istio-proxy-nat istio-output
  [ ct load state => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
  [ cmp neq reg 1 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 accept ]
  userdata = { \x00\x0cestablished\x00 }

inet istio-proxy-nat istio-output
  [ ct load state => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x00000001 ) ^ 0x00000000 ]
  [ cmp neq reg 1 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 drop ]
  userdata = { \x00\x08invalid\x00 }

inet istio-proxy-nat istio-output
  [ ct load state => reg 1 ]
  [ bitwise reg 1 = ( reg 1 & 0x0000004f ) ^ 0x00000000 ]
  [ cmp neq reg 1 0x00000000 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0ball states\x00 }

inet istio-proxy-nat istio-output
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 jump -> istio-redirect ]
  userdata = { \x00\x08capture\x00 }

inet istio-proxy-mangle prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ ct load mark => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ ct load mark => reg 1 ]
  [ meta set mark with reg 1 ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x08restore\x00 }

inet istio-proxy-mangle prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp neq reg 1 0x0100007f ]
  [ immediate reg 1 0x00009e3a ]
  [ tproxy ip port reg 1 ]
  [ immediate reg 1 0x00000539 ]
  [ meta set mark with reg 1 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 accept ]
  userdata = { \x00\x0atproxy v4\x00 }

inet istio-proxy-mangle prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x0000000a ]
  [ payload load 16b @ network header + 24 => reg 1 ]
  [ cmp neq reg 1 0x00000000 0x00000000 0x00000000 0x01000000 ]
  [ immediate reg 1 0x00009e3a ]
  [ tproxy ip6 port reg 1 ]
  [ immediate reg 1 0x00000539 ]
  [ meta set mark with reg 1 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 0 accept ]
  userdata = { \x00\x0atproxy v6\x00 }

inet istio-proxy-mangle prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000006 ]
  [ meta load mark => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ meta load mark => reg 1 ]
  [ ct set mark with reg 1 ]
  userdata = { \x00\x05save\x00 }

inet istio-proxy-mangle prerouting
  [ meta load mark => reg 1 ]
  [ cmp neq reg 1 0x0000053a ]
  [ counter pkts 0 bytes 0 ]
  userdata = { \x00\x0cnot hairpin\x00 }

inet istio-proxy-mangle output
  [ meta load oifname => reg 1 ]
  [ cmp eq reg 1 0x00006f6c 0x00000000 0x00000000 0x00000000 ]
  [ meta load skuid => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x0000053a ]
  [ meta set mark with reg 1 ]
  userdata = { \x00\x08hairpin\x00 }

inet istio-proxy-raw output
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000011 ]
  [ payload load 2b @ transport header + 2 => reg 1 ]
  [ cmp eq reg 1 0x00003500 ]
  [ meta load skuid => reg 1 ]
  [ cmp eq reg 1 0x00000539 ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x00000001 ]
  [ ct set zone with reg 1 ]
  userdata = { \x00\x0fproxy dns zone\x00 }

inet istio-proxy-raw prerouting
  [ meta load l4proto => reg 1 ]
  [ cmp eq reg 1 0x00000011 ]
  [ payload load 2b @ transport header + 0 => reg 1 ]
  [ cmp eq reg 1 0x00003500 ]
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]
  [ payload load 4b @ network header + 16 => reg 1 ]
  [ cmp eq reg 1 0x3500007f ]
  [ counter pkts 0 bytes 0 ]
  [ immediate reg 1 0x00000002 ]
  [ ct set zone with reg 1 ]
  userdata = { \x00\x0fdns reply zone\x00 }
"""#
}
