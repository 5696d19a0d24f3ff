//! Static checks on a mutation, done before it is proposed (etcd `etcdserver/api/v3rpc/key.go`
//! `checkPutRequest`, `checkDeleteRequest`, `checkTxnRequest`, `checkIntervals`, and the
//! server's `--max-request-bytes`). They depend only on the request, never on the store, so a
//! request that passes them on the proposing member passes on every member.

use crate::api::{KeyRange, Mutation, RangeRequest, RequestOp, StoreError, TxnRequest, MAX_REQUEST_BYTES, MAX_TXN_OPS};
use crate::lease::{LeaseError, MAX_LEASE_TTL_SECS};

pub(crate) fn validate(mutation: &Mutation) -> Result<(), StoreError> {
    let size = estimated_size_bytes(mutation);
    if size > MAX_REQUEST_BYTES {
        return Err(StoreError::RequestTooLarge { size, limit: MAX_REQUEST_BYTES });
    }
    match mutation {
        Mutation::Put(put) => check_key(&put.key),
        Mutation::DeleteRange(delete) => check_range(&delete.range),
        Mutation::Txn(txn) => check_txn(txn),
        Mutation::Compact(_) | Mutation::LeaseRevoke(_) => Ok(()),
        Mutation::LeasedPut(leased) => check_key(&leased.put.key),
        // etcd `lessor.Grant`: ErrLeaseTTLTooLarge needs no store state.
        Mutation::LeaseGrant(grant) if grant.ttl_secs > MAX_LEASE_TTL_SECS => {
            Err(LeaseError::TtlTooLarge { ttl_secs: grant.ttl_secs }.into())
        }
        Mutation::LeaseGrant(_) => Ok(()),
    }
}

/// etcd measures the encoded request; keys and values dominate it, and a small per-item
/// overhead keeps a txn of many tiny ops from looking free.
fn estimated_size_bytes(mutation: &Mutation) -> usize {
    const PER_ITEM_OVERHEAD_BYTES: usize = 8;
    fn range_bytes(range: &KeyRange) -> usize {
        match range {
            KeyRange::Key(key) | KeyRange::Prefix(key) | KeyRange::FromKey(key) => key.len(),
            KeyRange::Range { start, end } => start.len() + end.len(),
        }
    }
    fn op_bytes(op: &RequestOp) -> usize {
        PER_ITEM_OVERHEAD_BYTES
            + match op {
                RequestOp::Range(range) => range_bytes(&range.range),
                RequestOp::Put(put) => put.key.len() + put.value.len(),
                RequestOp::LeasedPut(leased) => 8 + leased.put.key.len() + leased.put.value.len(),
                RequestOp::DeleteRange(delete) => range_bytes(&delete.range),
            }
    }
    match mutation {
        Mutation::Put(put) => PER_ITEM_OVERHEAD_BYTES + put.key.len() + put.value.len(),
        Mutation::DeleteRange(delete) => PER_ITEM_OVERHEAD_BYTES + range_bytes(&delete.range),
        Mutation::Txn(txn) => {
            let compares: usize = txn
                .compare
                .iter()
                .map(|c| {
                    let value_len = match &c.target {
                        crate::api::CompareTarget::Value(value) => value.len(),
                        _ => 8,
                    };
                    PER_ITEM_OVERHEAD_BYTES + c.key.len() + value_len
                })
                .sum();
            compares + txn.success.iter().chain(&txn.failure).map(op_bytes).sum::<usize>()
        }
        Mutation::Compact(_) | Mutation::LeaseGrant(_) | Mutation::LeaseRevoke(_) => PER_ITEM_OVERHEAD_BYTES,
        Mutation::LeasedPut(leased) => 2 * PER_ITEM_OVERHEAD_BYTES + leased.put.key.len() + leased.put.value.len(),
    }
}

/// etcd v3rpc/key.go `checkRangeRequest`: a Range needs a key (`ErrGRPCEmptyKey`), with
/// the same shapes allowed as for a DeleteRange (see [`check_range`]).
pub(crate) fn check_range_request(request: &RangeRequest) -> Result<(), StoreError> {
    check_range(&request.range)
}

/// etcd `ErrGRPCEmptyKey`: "key is not provided".
fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidRequest { reason: "key is not provided".to_string() });
    }
    Ok(())
}

/// A single-key range needs a key; a prefix may be empty (every key, etcd's `--prefix ""`);
/// an explicit range and a from-key range need a non-empty start (etcd's empty key is
/// invalid; `--from-key ''` sends `"\0"`) — an inverted range is allowed and simply matches
/// nothing, as in etcd.
fn check_range(range: &KeyRange) -> Result<(), StoreError> {
    match range {
        KeyRange::Key(key) => check_key(key),
        KeyRange::Prefix(_) => Ok(()),
        KeyRange::Range { start, .. } | KeyRange::FromKey(start) => check_key(start),
    }
}

/// etcd `checkTxnRequest`: each of compare/success/failure holds at most `MAX_TXN_OPS`;
/// then `checkIntervals` per branch.
fn check_txn(txn: &TxnRequest) -> Result<(), StoreError> {
    for n_ops in [txn.compare.len(), txn.success.len(), txn.failure.len()] {
        if n_ops > MAX_TXN_OPS {
            return Err(StoreError::TooManyOps { n_ops, limit: MAX_TXN_OPS });
        }
    }
    for compare in &txn.compare {
        check_key(&compare.key)?;
    }
    for branch in [&txn.success, &txn.failure] {
        for op in branch {
            match op {
                RequestOp::Range(range) => check_range(&range.range)?,
                RequestOp::Put(put) => check_key(&put.key)?,
                RequestOp::LeasedPut(leased) => check_key(&leased.put.key)?,
                RequestOp::DeleteRange(delete) => check_range(&delete.range)?,
            }
        }
        check_intervals(branch)?;
    }
    Ok(())
}

/// etcd `checkIntervals`: within one branch, a key may be put at most once, and a put may
/// not fall inside any delete range of the same branch (ErrDuplicateKey). Deletes may
/// overlap each other. This is what makes "one change per key per revision" hold.
pub(crate) fn check_intervals(ops: &[RequestOp]) -> Result<(), StoreError> {
    let deletes: Vec<&KeyRange> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(delete) => Some(&delete.range),
            _ => None,
        })
        .collect();
    let mut puts = std::collections::BTreeSet::new();
    for op in ops {
        let put = match op {
            RequestOp::Put(put) => put,
            RequestOp::LeasedPut(leased) => &leased.put,
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => continue,
        };
        if !puts.insert(put.key.as_str()) || deletes.iter().any(|range| range.contains(&put.key)) {
            return Err(StoreError::DuplicateKeyInTxn { key: put.key.clone() });
        }
    }
    Ok(())
}
