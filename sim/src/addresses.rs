//! The address plan: every address a seed's nodes use, named once. The subnet says what a
//! node is, so that traces read easily:
//!
//! | nodes                                   | address                    |
//! |-----------------------------------------|----------------------------|
//! | store members                           | `10.0.1.<member id>:2379`  |
//! | apiservers                              | `10.0.2.<n + 1>:6443`      |
//! | controller-managers                     | `10.0.3.<n + 1>`           |
//! | the scheduler                           | `10.0.4.1`                 |
//! | kubelets                                | `10.0.5.<n + 1>` (then `10.1.<n / 254>.<n % 254 + 1>`) |
//! | the operator                            | `10.0.8.1`                 |
//! | clients (workload, kubectl, readers)    | `10.0.9.<host>`            |
//!
//! A store member's address follows its member id, not its slot: a replacement or a
//! restored member gets a new id, and so a new address, as etcd requires.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use store::api::MemberId;
use store::rpc::STORE_PORT;

/// The port every apiserver serves on.
pub const APISERVER_PORT: u16 = 6443;

/// The highest member id the address plan has room for (`10.0.1.<id>`).
pub const MAX_MEMBER_ID: MemberId = MemberId(254);

/// The operator's node (`crate::operator`).
pub const OPERATOR: IpAddr = ip(8, 1);

/// The scheduler's node (there is one).
pub const SCHEDULER: IpAddr = ip(4, 1);

/// store-smoke's workload node. Its clients hold the apiserver's principal, so the
/// store-level checkers take it for the apiserver.
pub const WORKLOAD: IpAddr = client(1);

/// deploy-nginx's user, running kubectl (store-smoke's workload has the same address: the
/// two never share a seed).
pub const KUBECTL: IpAddr = client(1);

/// The checker's client that reads the store's final keyspace after the scenario ended.
pub const END_STATE_READER: IpAddr = client(250);

const fn ip(subnet: u8, host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, subnet, host))
}

/// The host part of the `idx`-th node of a kind numbered from 0 (`10.0.<subnet>.<idx + 1>`).
fn nth_host(idx: u32) -> u8 {
    u8::try_from(idx + 1)
        .ok()
        .filter(|host| *host < u8::MAX)
        .unwrap_or_else(|| panic!("the address plan has room for 254 nodes of a kind, not {}", idx + 1))
}

/// Store member `member`'s address (its node's IP and the store port).
pub fn store_member(member: MemberId) -> SocketAddr {
    assert!((MemberId(1)..=MAX_MEMBER_ID).contains(&member), "{member} is outside the address plan");
    SocketAddr::new(ip(1, member.get() as u8), STORE_PORT)
}

/// The address apiserver `idx` (`apiserver-<idx>`) serves on.
pub fn apiserver(idx: u32) -> SocketAddr {
    SocketAddr::new(ip(2, nth_host(idx)), APISERVER_PORT)
}

/// `controller-manager-<idx>`'s node.
pub fn controller_manager(idx: u32) -> IpAddr {
    ip(3, nth_host(idx))
}

/// `kubelet-<idx>`'s node: `10.0.5.<idx + 1>` for the first 254, then
/// `10.1.<idx / 254>.<idx % 254 + 1>` (large clusters, `--kubelets`).
pub fn kubelet(idx: u32) -> IpAddr {
    if idx < 254 {
        return ip(5, nth_host(idx));
    }
    let block = u8::try_from(idx / 254).unwrap_or_else(|_| panic!("the address plan has no room for kubelet-{idx}"));
    IpAddr::V4(Ipv4Addr::new(10, 1, block, (idx % 254 + 1) as u8))
}

/// A client node (a user, a test's client, a checker's reader) at `10.0.9.<host>`.
pub const fn client(host: u8) -> IpAddr {
    ip(9, host)
}
