//! The Service ClusterIP allocator, as kube-apiserver's: a bitmap of the
//! `--service-cluster-ip-range` kept IN THE STORE as one object (Kubernetes'
//! `RangeAllocation` at `/registry/ranges/serviceips`), changed only by read-modify-write
//! transactions that compare the object's mod_revision (Kubernetes
//! `pkg/registry/core/service/allocator/storage/storage.go`: `tryUpdate` through
//! `GuaranteedUpdate`, which re-reads and retries on conflict). Every apiserver allocates
//! from the same object, so the compare-and-swap is what keeps two apiservers from handing
//! out the same IP; the bitmap survives apiserver restarts and store restores with the
//! rest of the keyspace.
//!
//! - Allocate (`AllocateNext`, `pkg/registry/core/service/ipallocator/bitmap.go`): a
//!   random free offset (the scan starts at a random offset and wraps, Kubernetes'
//!   `randomScanStrategy`), or the requested `spec.clusterIP` when it is in range and free
//!   (422 otherwise, "provided IP is already allocated"); a full range is 500 "range is
//!   full".
//! - Release: clears the bit, the same way. Releasing a free IP writes nothing.
//! - The range's usable addresses exclude the network and broadcast addresses, as
//!   Kubernetes' `RangeSize` does for IPv4; Kubernetes also reserves the first one for the
//!   `kubernetes` Service, which kubesim does not create.
//!
//! One deliberate difference: Kubernetes creates the allocation object from its repair
//! loop at apiserver start and refuses allocations until then; kubesim creates it at the
//! first allocation (a compare on mod_revision 0), so that an apiserver that never serves
//! a Service never writes it. The repair loop ([`crate::service_ip_repair`]) also creates it.
//!
//! Under the planted bug [`crate::ApiServerBugs::service_ips_unconditional_put`] the
//! bitmap is written with an unconditional put: last writer wins.

use std::net::Ipv4Addr;

use api::ApiError;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use store::api::{Compare, CompareOp, KeyRange, PutRequest, RangeRequest, RequestOp, Revision, TxnRequest};

use crate::backend::Backend;
use crate::registry::api_error_from_store;

/// Where the bitmap lives (kube-apiserver's `/registry/ranges/serviceips`).
pub const SERVICE_IPS_KEY: &str = "/registry/ranges/serviceips";

/// Bound on read-modify-write rounds of one allocation or release whose bitmap keeps
/// changing underneath (Kubernetes' `GuaranteedUpdate` retries without bound).
pub const MAX_ALLOCATION_ATTEMPTS: usize = 16;

/// The narrowest and widest ranges accepted (a /16 is 65 534 addresses, an 8 KiB bitmap).
const MIN_PREFIX_LEN: u8 = 16;
const MAX_PREFIX_LEN: u8 = 30;

/// An IPv4 `--service-cluster-ip-range`, e.g. `10.96.0.0/28`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceIpRange {
    network: u32,
    prefix_len: u8,
}

/// A range that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("service IP range {0:?} is not of the form a.b.c.d/len")]
    Malformed(String),
    #[error("service IP range {0}: prefix length must be {MIN_PREFIX_LEN}..={MAX_PREFIX_LEN}")]
    PrefixLength(String),
    #[error("service IP range {0}: host bits are set")]
    HostBits(String),
}

impl ServiceIpRange {
    /// kubesim's default: a /28, fourteen usable IPs, so that a run exhausts and reuses it
    /// (kube-apiserver's default is `10.96.0.0/12`).
    pub const DEFAULT: ServiceIpRange = ServiceIpRange { network: u32::from_be_bytes([10, 96, 0, 0]), prefix_len: 28 };

    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let malformed = || RangeError::Malformed(text.to_string());
        let (address, length) = text.split_once('/').ok_or_else(malformed)?;
        let address: Ipv4Addr = address.parse().map_err(|_| malformed())?;
        let prefix_len: u8 = length.parse().map_err(|_| malformed())?;
        if !(MIN_PREFIX_LEN..=MAX_PREFIX_LEN).contains(&prefix_len) {
            return Err(RangeError::PrefixLength(text.to_string()));
        }
        let network = u32::from(address);
        if network & !Self::mask(prefix_len) != 0 {
            return Err(RangeError::HostBits(text.to_string()));
        }
        Ok(Self { network, prefix_len })
    }

    fn mask(prefix_len: u8) -> u32 {
        u32::MAX << (32 - u32::from(prefix_len))
    }

    /// How many IPs can be allocated: the range without its network and broadcast addresses.
    pub fn size(&self) -> usize {
        (1usize << (32 - u32::from(self.prefix_len))) - 2
    }

    /// The IP at `offset` (0 is the first address after the network address).
    pub fn ip(&self, offset: usize) -> Ipv4Addr {
        debug_assert!(offset < self.size());
        Ipv4Addr::from(self.network + 1 + offset as u32)
    }

    /// The offset of `ip`, if it is an allocatable address of the range.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<usize> {
        let ip = u32::from(ip);
        if ip & Self::mask(self.prefix_len) != self.network {
            return None;
        }
        let offset = (ip - self.network) as usize;
        (1..=self.size()).contains(&offset).then(|| offset - 1)
    }
}

impl std::fmt::Display for ServiceIpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix_len)
    }
}

/// The stored form (Kubernetes' `api.RangeAllocation`: the range and the bitmap's bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeAllocation {
    pub range: String,
    pub data: Vec<u8>,
}

/// Why an IP could not be allocated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("the provided IP ({ip}) is not in the valid range {range}")]
    NotInRange { ip: String, range: ServiceIpRange },
    #[error("the provided IP ({ip}) is already allocated")]
    Allocated { ip: Ipv4Addr },
    #[error("range {range} is full")]
    Full { range: ServiceIpRange },
}

impl From<AllocationError> for ApiError {
    fn from(error: AllocationError) -> Self {
        match error {
            AllocationError::Full { .. } => {
                ApiError::Internal { reason: format!("failed to allocate a serviceIP: {error}") }
            }
            _ => ApiError::Invalid { field: "spec.clusterIP".into(), reason: error.to_string() },
        }
    }
}

/// The allocation bitmap of one range: bit `offset` set when `range.ip(offset)` is taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationBitmap {
    range: ServiceIpRange,
    bits: Vec<u8>,
}

impl AllocationBitmap {
    /// Every IP free.
    pub fn new(range: ServiceIpRange) -> Self {
        Self { range, bits: vec![0; range.size().div_ceil(8)] }
    }

    /// The bitmap a stored allocation holds (bits past the range are ignored; a stored
    /// range that differs from the configured one is read as if it were the same, as a
    /// Kubernetes allocator restores only when the ranges agree).
    pub fn from_stored(range: ServiceIpRange, stored: &RangeAllocation) -> Self {
        let mut bitmap = Self::new(range);
        for (byte, stored) in bitmap.bits.iter_mut().zip(&stored.data) {
            *byte = *stored;
        }
        if let Some(last) = bitmap.bits.last_mut() {
            let used = range.size() % 8;
            if used != 0 {
                *last &= (1u8 << used) - 1;
            }
        }
        bitmap
    }

    pub fn to_stored(&self) -> RangeAllocation {
        RangeAllocation { range: self.range.to_string(), data: self.bits.clone() }
    }

    pub fn range(&self) -> ServiceIpRange {
        self.range
    }

    pub fn has(&self, ip: Ipv4Addr) -> bool {
        self.range.offset(ip).is_some_and(|offset| self.has_offset(offset))
    }

    fn has_offset(&self, offset: usize) -> bool {
        self.bits[offset / 8] & (1 << (offset % 8)) != 0
    }

    fn set(&mut self, offset: usize, taken: bool) {
        if taken {
            self.bits[offset / 8] |= 1 << (offset % 8);
        } else {
            self.bits[offset / 8] &= !(1 << (offset % 8));
        }
    }

    /// Takes `ip` (Kubernetes `Allocate`).
    pub fn allocate(&mut self, ip: Ipv4Addr) -> Result<(), AllocationError> {
        let offset = self
            .range
            .offset(ip)
            .ok_or_else(|| AllocationError::NotInRange { ip: ip.to_string(), range: self.range })?;
        if self.has_offset(offset) {
            return Err(AllocationError::Allocated { ip });
        }
        self.set(offset, true);
        Ok(())
    }

    /// Takes the first free IP at or after offset `start`, wrapping around (Kubernetes
    /// `AllocateNext` with its random scan: the caller draws `start`).
    pub fn allocate_next(&mut self, start: usize) -> Result<Ipv4Addr, AllocationError> {
        let size = self.range.size();
        let offset = (0..size)
            .map(|i| (start + i) % size)
            .find(|&o| !self.has_offset(o))
            .ok_or(AllocationError::Full { range: self.range })?;
        self.set(offset, true);
        Ok(self.range.ip(offset))
    }

    /// Frees `ip`; whether it was taken.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        match self.range.offset(ip) {
            Some(offset) if self.has_offset(offset) => {
                self.set(offset, false);
                true
            }
            _ => false,
        }
    }

    /// Every taken IP, in address order.
    pub fn allocated(&self) -> Vec<Ipv4Addr> {
        (0..self.range.size()).filter(|&o| self.has_offset(o)).map(|o| self.range.ip(o)).collect()
    }

    pub fn count(&self) -> usize {
        self.bits.iter().map(|b| b.count_ones() as usize).sum()
    }
}

/// A bitmap as read from the store, with the mod_revision a write must compare (0: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBitmap {
    pub bitmap: AllocationBitmap,
    pub mod_revision: Revision,
}

/// The allocator over the store. Cheap to clone.
#[derive(Clone)]
pub struct ServiceIpAllocator<B> {
    backend: B,
    range: ServiceIpRange,
    /// PLANTED BUG `service-ips-unconditional-put`: write the bitmap without comparing its
    /// mod_revision.
    unconditional_put: bool,
}

impl<B: Backend> ServiceIpAllocator<B> {
    pub fn new(backend: B, range: ServiceIpRange) -> Self {
        Self { backend, range, unconditional_put: false }
    }

    /// The same allocator with the planted bug switched on or off.
    pub fn with_planted_bug_unconditional_put(mut self, on: bool) -> Self {
        self.unconditional_put = on;
        self
    }

    pub fn range(&self) -> ServiceIpRange {
        self.range
    }

    /// A linearizable read of the bitmap (an empty one when it was never written).
    pub async fn read(&self) -> Result<StoredBitmap, ApiError> {
        let response = self
            .backend
            .range(RangeRequest::new(KeyRange::Key(SERVICE_IPS_KEY.to_string())))
            .await
            .map_err(api_error_from_store)?;
        let Some(kv) = response.kvs.into_iter().next() else {
            return Ok(StoredBitmap { bitmap: AllocationBitmap::new(self.range), mod_revision: 0 });
        };
        let stored: RangeAllocation = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::Internal { reason: format!("cannot decode {SERVICE_IPS_KEY}: {e}") })?;
        Ok(StoredBitmap { bitmap: AllocationBitmap::from_stored(self.range, &stored), mod_revision: kv.mod_revision })
    }

    /// Writes `bitmap` if the stored one is still at `expected_mod_revision`; whether it was.
    /// An error may leave the write applied or not (a timeout).
    pub async fn compare_and_swap(
        &self,
        bitmap: &AllocationBitmap,
        expected_mod_revision: Revision,
    ) -> Result<bool, ApiError> {
        let value = serde_json::to_vec(&bitmap.to_stored())
            .map_err(|e| ApiError::Internal { reason: format!("cannot encode {SERVICE_IPS_KEY}: {e}") })?;
        let put =
            RequestOp::Put(PutRequest { key: SERVICE_IPS_KEY.to_string(), value: Bytes::from(value), prev_kv: false });
        // PLANTED BUG (`service-ips-unconditional-put`): without the compare, two
        // apiservers that read the same bitmap both write theirs; the last one wins and
        // the other's allocation is lost from the bitmap, so its IP is handed out again.
        let compare = if self.unconditional_put {
            Vec::new()
        } else {
            vec![Compare::mod_revision(SERVICE_IPS_KEY, CompareOp::Equal, expected_mod_revision)]
        };
        let txn = TxnRequest { compare, success: vec![put], failure: Vec::new() };
        let response = self.backend.txn(txn).await.map_err(api_error_from_store)?;
        if !response.succeeded {
            coverage::reached!("apiserver.service-ip.conflict");
        }
        Ok(response.succeeded)
    }

    /// Read, change, compare-and-swap, again on conflict (Kubernetes' `tryUpdate`): `change`
    /// edits the bitmap as read and returns its result, or `None` when there is nothing to
    /// write.
    async fn update<T>(
        &self,
        mut change: impl FnMut(&mut AllocationBitmap) -> Result<Option<T>, AllocationError>,
    ) -> Result<Option<T>, ApiError> {
        for _attempt in 0..MAX_ALLOCATION_ATTEMPTS {
            let StoredBitmap { mut bitmap, mod_revision } = self.read().await?;
            let Some(result) = change(&mut bitmap)? else {
                return Ok(None);
            };
            if self.compare_and_swap(&bitmap, mod_revision).await? {
                return Ok(Some(result));
            }
        }
        Err(ApiError::Unavailable {
            reason: format!("{SERVICE_IPS_KEY} kept changing: gave up after {MAX_ALLOCATION_ATTEMPTS} attempts"),
        })
    }

    /// Allocates `requested` (a dotted IPv4; empty: any free IP) and returns it.
    pub async fn allocate(&self, requested: &str) -> Result<Ipv4Addr, ApiError> {
        let requested = match requested {
            "" => None,
            text => Some(text.parse::<Ipv4Addr>().map_err(|_| ApiError::Invalid {
                field: "spec.clusterIP".into(),
                reason: format!("{text:?} is not a valid IPv4 address"),
            })?),
        };
        let allocated = self
            .update(|bitmap| match requested {
                Some(ip) => bitmap.allocate(ip).map(|()| Some(ip)),
                None => {
                    use madsim::rand::Rng;
                    let start = madsim::rand::thread_rng().gen_range(0..self.range.size());
                    bitmap.allocate_next(start).map(Some)
                }
            })
            .await?;
        let ip = allocated.expect("an allocation always writes");
        coverage::reached!("apiserver.service-ip.allocated");
        Ok(ip)
    }

    /// Frees `ip` (nothing to write when it is not taken, or not in the range).
    pub async fn release(&self, ip: Ipv4Addr) -> Result<(), ApiError> {
        let released = self.update(|bitmap| Ok(bitmap.release(ip).then_some(()))).await?;
        if released.is_some() {
            coverage::reached!("apiserver.service-ip.released");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryBackend;
    use store::api::StoreError;

    fn range() -> ServiceIpRange {
        ServiceIpRange::parse("10.96.0.0/28").unwrap()
    }

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().unwrap()
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        madsim::runtime::Runtime::new().block_on(future)
    }

    #[test]
    fn a_range_excludes_its_network_and_broadcast_addresses() {
        let range = range();
        assert_eq!(range.size(), 14);
        assert_eq!(range.ip(0), ip("10.96.0.1"));
        assert_eq!(range.ip(13), ip("10.96.0.14"));
        assert_eq!(range.offset(ip("10.96.0.0")), None);
        assert_eq!(range.offset(ip("10.96.0.15")), None);
        assert_eq!(range.offset(ip("10.96.1.1")), None);
        assert_eq!(range.to_string(), "10.96.0.0/28");
        assert_eq!(ServiceIpRange::DEFAULT, range);
        assert!(matches!(ServiceIpRange::parse("10.96.0.1/28"), Err(RangeError::HostBits(_))));
        assert!(matches!(ServiceIpRange::parse("10.96.0.0/31"), Err(RangeError::PrefixLength(_))));
        assert!(matches!(ServiceIpRange::parse("nonsense"), Err(RangeError::Malformed(_))));
    }

    #[test]
    fn the_bitmap_allocates_requested_and_next_ips_until_full() {
        let mut bitmap = AllocationBitmap::new(range());
        bitmap.allocate(ip("10.96.0.5")).unwrap();
        assert_eq!(bitmap.allocate(ip("10.96.0.5")), Err(AllocationError::Allocated { ip: ip("10.96.0.5") }));
        assert!(matches!(bitmap.allocate(ip("10.97.0.5")), Err(AllocationError::NotInRange { .. })));
        // The scan starts where asked and skips what is taken.
        assert_eq!(bitmap.allocate_next(4), Ok(ip("10.96.0.6")));
        for _ in 2..14 {
            bitmap.allocate_next(13).unwrap();
        }
        assert_eq!(bitmap.count(), 14);
        assert_eq!(bitmap.allocate_next(0), Err(AllocationError::Full { range: range() }));
        assert!(bitmap.release(ip("10.96.0.9")));
        assert!(!bitmap.release(ip("10.96.0.9")));
        assert_eq!(bitmap.allocate_next(0), Ok(ip("10.96.0.9")));
        let stored = bitmap.to_stored();
        assert_eq!(AllocationBitmap::from_stored(range(), &stored), bitmap);
    }

    #[test]
    fn allocation_creates_the_bitmap_in_the_store_and_release_frees_it() {
        block_on(async {
            let backend = InMemoryBackend::new();
            let allocator = ServiceIpAllocator::new(backend.clone(), range());
            assert_eq!(allocator.read().await.unwrap().mod_revision, 0, "nothing written before a Service");
            let first = allocator.allocate("10.96.0.3").await.unwrap();
            assert_eq!(first, ip("10.96.0.3"));
            let second = allocator.allocate("").await.unwrap();
            assert_ne!(first, second);
            let stored = allocator.read().await.unwrap();
            assert_eq!(stored.bitmap.allocated().len(), 2);
            assert!(stored.mod_revision > 0);
            // A second allocator (another apiserver) sees the first's allocations.
            let other = ServiceIpAllocator::new(backend.clone(), range());
            let taken = other.allocate("10.96.0.3").await.unwrap_err();
            assert!(matches!(taken, ApiError::Invalid { .. }), "{taken:?}");
            allocator.release(first).await.unwrap();
            assert_eq!(other.allocate("10.96.0.3").await.unwrap(), first);
        })
    }

    #[test]
    fn an_exhausted_range_is_an_error_until_an_ip_is_released() {
        block_on(async {
            let allocator = ServiceIpAllocator::new(InMemoryBackend::new(), range());
            let mut ips = Vec::new();
            for _ in 0..14 {
                ips.push(allocator.allocate("").await.unwrap());
            }
            ips.sort();
            ips.dedup();
            assert_eq!(ips.len(), 14, "every IP handed out once");
            let full = allocator.allocate("").await.unwrap_err();
            assert!(matches!(&full, ApiError::Internal { reason } if reason.contains("full")), "{full:?}");
            allocator.release(ips[7]).await.unwrap();
            assert_eq!(allocator.allocate("").await.unwrap(), ips[7]);
        })
    }

    /// Kubernetes' `GuaranteedUpdate`: a compare that fails (someone wrote the bitmap
    /// between the read and the write) is retried on a fresh read, keeping both
    /// allocations; the planted bug's put overwrites the other's.
    #[test]
    fn a_conflicting_write_is_retried_on_a_fresh_read() {
        block_on(async {
            let backend = InMemoryBackend::new();
            let allocator = ServiceIpAllocator::new(backend.clone(), range());
            let stale = allocator.read().await.unwrap();
            allocator.allocate("10.96.0.1").await.unwrap();
            // A writer holding the stale read loses the race...
            let mut mine = stale.bitmap.clone();
            mine.allocate(ip("10.96.0.2")).unwrap();
            assert!(!allocator.compare_and_swap(&mine, stale.mod_revision).await.unwrap());
            // ... and allocate() retries from a fresh read, keeping both.
            allocator.allocate("10.96.0.2").await.unwrap();
            assert_eq!(allocator.read().await.unwrap().bitmap.allocated(), vec![ip("10.96.0.1"), ip("10.96.0.2")]);

            let buggy = ServiceIpAllocator::new(backend.clone(), range()).with_planted_bug_unconditional_put(true);
            let mut lost = stale.bitmap.clone();
            lost.allocate(ip("10.96.0.3")).unwrap();
            assert!(buggy.compare_and_swap(&lost, stale.mod_revision).await.unwrap());
            assert_eq!(allocator.read().await.unwrap().bitmap.allocated(), vec![ip("10.96.0.3")], "last writer wins");
        })
    }

    #[test]
    fn a_store_that_fails_fails_the_allocation() {
        block_on(async {
            let backend = InMemoryBackend::new();
            let allocator = ServiceIpAllocator::new(backend.clone(), range());
            backend.set_txn_failure(Some(StoreError::Unavailable { reason: "no leader".into() }));
            assert!(matches!(allocator.allocate("").await, Err(ApiError::Unavailable { .. })));
        })
    }
}
