"""The ``bridge`` network driver: a Linux bridge per network, a network
namespace and veth pair per container, persistent IPAM, NAT and port mapping
through an nftables table of its own.  See docs/network.md."""
